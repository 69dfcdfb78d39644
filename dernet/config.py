"""Read YAML configuration once, at the edge, into typed dataclasses; typos get the nearest valid key."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import UserError
from .imaging.transforms import ClaheParams

__all__ = ["ConfigError", "check_choice", "from_mapping", "load_clahe_params", "load_yaml"]

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A configuration file or key the user got wrong; the message says what to write instead."""


def check_choice(key: str, value: Any, choices: tuple) -> None:
    """One line naming the key, the value and the choices (None spelled null, as in YAML): a recipe's mistake."""
    if value not in choices:
        shown = ", ".join("null" if c is None else str(c) for c in choices)
        raise ConfigError(f"{key} must be one of {shown}, got '{value}'")


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def from_mapping(cls: type[T], values: dict[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``values``; an unknown key raises with the closest valid one."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    _check_keys(values, fields, where)
    return cls(**values)


def _check_keys(values: dict[str, Any], valid: Any, where: str) -> None:
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(key, list(valid), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"{where}: unknown key '{key}'{hint}")


def load_clahe_params(path: str | Path) -> ClaheParams:
    """CLAHE settings from the `preprocessing` section of a data config (configs/data.yaml)."""
    section = dict(load_yaml(path).get("preprocessing") or {})
    known = {"clahe_clip_limit": "clip_limit", "clahe_tile_grid": "tile_grid"}
    _check_keys(section, known, f"{path}: preprocessing")
    return ClaheParams(**{known[k]: v for k, v in section.items()})
