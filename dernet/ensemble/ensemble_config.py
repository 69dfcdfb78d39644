"""configs/ensemble/ensemble.yaml: which members, how to vote, where the operating point comes from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ConfigError, from_mapping, load_yaml
from .voting import COMBINE_MODES, MAX_GRID_POINTS, PAPER_WEIGHTS_BY_MEMBER, grid_points

__all__ = ["EnsembleConfig", "load_ensemble_config"]


@dataclass(frozen=True)
class EnsembleConfig:
    """The ensemble section (comments in configs/ensemble/ensemble.yaml)."""

    members: dict[str, str] = field(default_factory=dict)
    data_dir: str = "data/prepared"
    weights: str | list[float] = "paper"
    combine: str = "probability"
    weight_step: float = 0.02
    fit_split: str = "val"
    val_fold: int | None = None
    output: str = "runs/ensemble/ensemble.json"
    bootstrap_resamples: int = 1000
    batch_size: int = 32
    lesion_types: str | None = None

    def __post_init__(self) -> None:
        if not self.members:
            raise ConfigError("ensemble: 'members' must name at least one member and its checkpoint")
        if self.fit_split not in {"train", "val"}:
            raise ConfigError(f"ensemble: fit_split must be 'val' (or 'train'), never '{self.fit_split}'")
        if self.combine not in COMBINE_MODES:
            raise ConfigError(f"ensemble: combine must be one of {', '.join(COMBINE_MODES)}, got '{self.combine}'")
        if isinstance(self.weights, str) and self.weights not in {"paper", "fit"}:
            raise ConfigError(f"ensemble: weights must be 'paper', 'fit' or a list, got '{self.weights}'")
        if self.weights == "paper" and set(self.members) != set(PAPER_WEIGHTS_BY_MEMBER):
            raise ConfigError(
                f"ensemble: the paper weights are for members named {', '.join(PAPER_WEIGHTS_BY_MEMBER)}; "
                f"got {', '.join(self.members)} (use weights: fit or a list)"
            )
        if self.weights == "fit" and grid_points(len(self.members), self.weight_step) > MAX_GRID_POINTS:
            raise ConfigError(
                f"ensemble: weights: fit with {len(self.members)} members on a {self.weight_step:g} grid tries "
                f"{grid_points(len(self.members), self.weight_step):,} weightings; raise weight_step (0.05 or 0.1) "
                "or give the weights as a list"
            )
        if isinstance(self.weights, list) and len(self.weights) != len(self.members):
            raise ConfigError(f"ensemble: {len(self.weights)} weights for {len(self.members)} members")

    @property
    def output_dir(self) -> Path:
        return Path(self.output).parent


def load_ensemble_config(path: str | Path) -> EnsembleConfig:
    return from_mapping(EnsembleConfig, load_yaml(path), str(path))
