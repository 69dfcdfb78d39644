"""Options of ours that Ultralytics' argument namespace cannot carry (CLAHE, focal loss), and how they reach its
trainer and validator: bound to the class Ultralytics is given, never through the environment."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dernet.imaging import ClaheParams

__all__ = ["OPTIONS_FILE", "SpineOptions", "WithOptions"]

OPTIONS_FILE = "spine_options.json"  # in a training run's folder: what it was trained with


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

    @classmethod
    def for_run(cls, run_dir: str | os.PathLike) -> SpineOptions:
        """The options a training run saved (``<run>/spine_options.json``), or the defaults for other weights."""
        saved = Path(run_dir) / OPTIONS_FILE
        return cls(**json.loads(saved.read_text())) if saved.is_file() else cls()


class WithOptions:
    """A mixin for Ultralytics' trainer and validator classes: ``Cls.with_options(options)`` is the class with
    ``options`` bound as a class attribute.

    Ultralytics builds a trainer or validator from the class it is passed (``model.train(trainer=...)``,
    ``model.val(validator=...)``), and for DDP it pickles that class with cloudpickle into every worker's start-up
    file; a class made here is not importable by name, so it travels by value, options included. Nothing goes
    through the environment, so no stale value of an earlier run can leak in.
    """

    options: SpineOptions = SpineOptions()

    @classmethod
    def with_options(cls, options: SpineOptions) -> Any:
        return type(cls.__name__, (cls,), {"options": options})
