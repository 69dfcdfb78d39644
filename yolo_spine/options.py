"""Options of ours that Ultralytics' argument namespace cannot carry (CLAHE, focal loss).

They travel in an environment variable, so that the trainers Ultralytics re-creates in DDP subprocesses see
them too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from dernet.imaging import ClaheParams

__all__ = ["ENV_VAR", "SpineOptions"]

ENV_VAR = "YOLO_SPINE_OPTIONS"


@dataclass(frozen=True)
class SpineOptions:
    clahe_clip_limit: float = 2.0
    clahe_tile_grid: int = 8
    focal: bool = True
    focal_gamma: float = 2.0
    focal_alpha: float | None = None

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.clahe_clip_limit, self.clahe_tile_grid)

    def to_env(self) -> None:
        os.environ[ENV_VAR] = json.dumps(asdict(self))

    @classmethod
    def for_run(cls, run_dir: str | os.PathLike) -> SpineOptions:
        """The options a training run saved (``<run>/spine_options.json``), or the defaults for other weights."""
        saved = Path(run_dir) / "spine_options.json"
        return cls(**json.loads(saved.read_text())) if saved.is_file() else cls()

    @classmethod
    def from_env(cls) -> SpineOptions:
        raw = os.environ.get(ENV_VAR)
        return cls(**json.loads(raw)) if raw else cls()
