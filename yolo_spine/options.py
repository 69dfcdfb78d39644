"""Options of ours that Ultralytics' argument namespace cannot carry (CLAHE, focal loss), and how they reach its
trainer and validator: bound to the class Ultralytics is given, never through the environment."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dernet.datasets.preprocessing import resolve_clahe
from dernet.imaging import ClaheParams
from dernet.records import RECORD_CONFIG, load_record, save_record

__all__ = ["DEFAULT_WEIGHTS", "OPTIONS_FILE", "SpineOptions", "WithOptions", "add_weights"]

OPTIONS_FILE = "spine_options.json"  # in a training run's folder: what it was trained with
DEFAULT_WEIGHTS = "runs/yolo_spine/train/weights/best.pt"


@dataclass(frozen=True)
class SpineOptions:
    """Our options of one detector run, saved in its folder as ``spine_options.json``."""

    __pydantic_config__ = RECORD_CONFIG
    FORMAT_VERSION: ClassVar[int] = 1

    clahe_clip_limit: float = 2.0  # resolved at training: the prepared data's, unless the config overrode it
    clahe_tile_grid: int = 8
    focal: bool = True
    focal_gamma: float = 2.0
    focal_alpha: float | None = None

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.clahe_clip_limit, self.clahe_tile_grid)

    @classmethod
    def from_config(cls, config: dict[str, Any], data_dir: str | os.PathLike) -> SpineOptions:
        """Our keys of a training config (removed from it); CLAHE from ``data_dir``'s preprocessing.json unless
        the config sets it."""
        ours = {k: config.pop(k) for k in list(config) if k in cls.__dataclass_fields__}
        clahe = resolve_clahe(data_dir, ours.pop("clahe_clip_limit", None), ours.pop("clahe_tile_grid", None))
        return cls(clahe_clip_limit=clahe.clip_limit, clahe_tile_grid=clahe.tile_grid, **ours)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SpineOptions:
        """A run's saved options; missing names the file (weights not trained here carry none)."""
        return load_record(
            cls, path, "the weights must come from a run of `spine-cad train-yolo` (its folder holds this file)"
        )

    @classmethod
    def for_run(cls, run_dir: str | os.PathLike, data_dir: str | os.PathLike) -> SpineOptions:
        """The options a training run saved, or, for weights trained elsewhere, the prepared data's CLAHE."""
        saved = Path(run_dir) / OPTIONS_FILE
        if saved.is_file():
            return cls.load(saved)
        clahe = resolve_clahe(data_dir, None, None)
        return cls(clahe_clip_limit=clahe.clip_limit, clahe_tile_grid=clahe.tile_grid)

    def save(self, run_dir: str | os.PathLike) -> Path:
        return save_record(self, Path(run_dir) / OPTIONS_FILE)


def add_weights(parser: argparse.ArgumentParser) -> None:
    """--weights: a detector run's weights (its folder holds spine_options.json)."""
    parser.add_argument(
        "--weights",
        type=Path,
        default=Path(DEFAULT_WEIGHTS),
        help=f"the trained detector's weights (default: {DEFAULT_WEIGHTS})",
    )


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
