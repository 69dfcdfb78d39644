"""``runs/ensemble/ensemble.json``: the fitted ensemble (members, voting weights, thresholds, the split that chose
them, the preprocessing the members trained with), as a typed record every reader and writer shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..imaging import ClaheParams
from ..records import RECORD_CONFIG, load_record, save_record

__all__ = ["ENSEMBLE_FIX", "EnsembleRecord", "LesionTypesRecord", "MemberRecord", "load_ensemble"]

ENSEMBLE_FIX = "run `make train-ensemble` (spine-cad fit-ensemble) to write it"


@dataclass(frozen=True)
class MemberRecord:
    __pydantic_config__ = RECORD_CONFIG

    name: str
    checkpoint: str
    threshold: float  # the member's own Youden threshold on the fitting split
    auroc: float | None = None  # on the fitting split (None when not measured)


@dataclass(frozen=True)
class ChosenOn:
    """The split the weights and thresholds were chosen on (never test), and what it held."""

    __pydantic_config__ = RECORD_CONFIG

    split: str
    data_dir: str | None = None  # the prepared data (explanations read its cache long side)
    val_fold: int | None = None
    images: int | None = None
    abnormal: int | None = None


@dataclass(frozen=True)
class LesionTypesRecord:
    """A multi-label lesion-type member carried beside the vote: its classes and each class's threshold (Youden
    on chosen_on's split; None where that split had one side only)."""

    __pydantic_config__ = RECORD_CONFIG

    checkpoint: str
    classes: tuple[str, ...]
    thresholds: tuple[float | None, ...]


@dataclass(frozen=True)
class EnsembleRecord:
    __pydantic_config__ = RECORD_CONFIG
    FORMAT_VERSION: ClassVar[int] = 1

    members: tuple[MemberRecord, ...]
    weights: tuple[float, ...]  # voting weights in member order, summing to 1
    combine: str  # probability | logit
    threshold: float  # the ensemble's Youden threshold on chosen_on.split
    chosen_on: ChosenOn
    clahe_clip_limit: float  # what every member was trained with (read from their checkpoints)
    clahe_tile_grid: int
    weights_source: str = ""
    auroc: float | None = None
    created: str = ""
    notes: dict[str, Any] = field(default_factory=dict)  # free-form (e.g. the bench's "random weights")
    lesion_types: LesionTypesRecord | None = None  # a lesion-type head (ensemble.yaml's lesion_types)
    # multiclass members (a folder-per-class dataset): the classes they vote over; abnormal = 1 - P(normal).
    # Empty for binary members.
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.weights) != len(self.members):
            raise ValueError(f"{len(self.weights)} weights for {len(self.members)} members")

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.clahe_clip_limit, self.clahe_tile_grid)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def save(self, path: str | os.PathLike) -> Path:
        return save_record(self, path)


def load_ensemble(path: str | os.PathLike) -> EnsembleRecord:
    """``ensemble.json`` checked: a missing file or a renamed, missing or mistyped key names the file and the key."""
    return load_record(EnsembleRecord, path, ENSEMBLE_FIX)
