"""The search space of ``python -m dernet tune`` (configs/tune/space.yaml): which member keys to search, over what,
and how the search samples and prunes. Read once, checked against the member's own keys."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, check_choice, from_mapping, load_yaml

__all__ = ["PRUNERS", "ParamSpace", "TuneSpace", "load_tune_space"]

PRUNERS = ("median", "hyperband", "none")
PARAM_TYPES = ("float", "int", "categorical")
SECTIONS = ("model", "data", "trainer")  # the LightningCLI sections a searched key may live in


@dataclass(frozen=True)
class ParamSpace:
    """One searched key: a float or int range (``log`` for a log-uniform one, ``step`` for a grid) or choices."""

    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def check(self, where: str) -> None:
        check_choice(f"{where}: type", self.type, PARAM_TYPES)
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}: a categorical key needs a non-empty 'choices' list")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ConfigError(f"{where}: a {self.type} key needs low < high, got low {self.low}, high {self.high}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ConfigError(f"{where}: log needs low > 0 and no step")


@dataclass(frozen=True)
class TuneSpace:
    """The space file (comments in configs/tune/space.yaml)."""

    params: dict[str, ParamSpace] = field(default_factory=dict)
    study: str | None = None
    seed: int = 42
    pruner: str = "median"
    startup_trials: int = 3
    warmup_epochs: int = 1
    min_epochs: int = 1

    def __post_init__(self) -> None:
        check_choice("pruner", self.pruner, PRUNERS)
        if not self.params:
            raise ConfigError("params: name at least one key to search (e.g. model.lr)")


def load_tune_space(path: str | Path, member_yaml: str | Path) -> TuneSpace:
    """The space at ``path``, every key checked: a known type and range, and a key the member takes (a section
    of the member's YAML, or an argument of the member or its data module)."""
    raw = load_yaml(path)
    params = {}
    for key, spec in dict(raw.pop("params", None) or {}).items():
        where = f"{path}: params.{key}"
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a mapping (type, low, high, log, step or choices)")
        param = from_mapping(ParamSpace, spec, where)
        param.check(where)
        _check_key(key, member_yaml, where)
        params[key] = param
    try:
        return from_mapping(TuneSpace, {**raw, "params": params}, str(path))
    except ConfigError as err:
        if str(err).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {err}") from None  # a value check of __post_init__: name the file


def _check_key(key: str, member_yaml: str | Path, where: str) -> None:
    from .data import RadiographDataModule
    from .member import MemberClassifier

    section, _, leaf = key.partition(".")
    if section not in SECTIONS or not leaf:
        raise ConfigError(f"{where}: a key is <section>.<name> with section {', '.join(SECTIONS)} (e.g. model.lr)")
    member = load_yaml(member_yaml).get(section) or {}
    accepted = {"model": MemberClassifier, "data": RadiographDataModule}.get(section)
    known = set(member) | (set(inspect.signature(accepted.__init__).parameters) - {"self"} if accepted else set())
    if leaf.split(".")[0] not in known:
        raise ConfigError(f"{where}: {member_yaml} has no {section} key '{leaf}'")
