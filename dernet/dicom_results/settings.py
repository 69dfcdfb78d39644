"""How the DICOM results describe themselves (manufacturer, series numbers and descriptions): the defaults in
``defaults.yaml`` beside this module, with the keys of a user's file (``--dicom-config``) over them."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field

from ..errors import MissingFileError
from ..records import RECORD_CONFIG, RecordError, record_from_dict

__all__ = ["KINDS", "DicomResultSettings", "SeriesSettings", "load_settings"]

KINDS = ("sr", "sc", "pr")  # Structured Report, Secondary Capture, Grayscale Softcopy Presentation State
LongString = Annotated[str, Field(min_length=1, max_length=64)]  # DICOM LO


@dataclass(frozen=True)
class SeriesSettings:
    __pydantic_config__ = RECORD_CONFIG
    number: Annotated[int, Field(ge=1, le=2**31 - 1)]
    description: LongString


@dataclass(frozen=True)
class Series:
    __pydantic_config__ = RECORD_CONFIG
    sr: SeriesSettings
    sc: SeriesSettings
    pr: SeriesSettings


@dataclass(frozen=True)
class DicomResultSettings:
    __pydantic_config__ = RECORD_CONFIG
    manufacturer: LongString
    model_name: LongString
    device_serial_number: LongString
    institution_name: LongString | None
    series: Series

    def series_of(self, kind: str) -> SeriesSettings:
        return getattr(self.series, kind)


def load_settings(path: Path | None = None) -> DicomResultSettings:
    """The defaults, with ``path``'s keys (YAML) over them; a missing file or a bad key is the user's to fix."""
    data = yaml.safe_load(files(__package__).joinpath("defaults.yaml").read_text(encoding="utf-8"))
    where = "the DICOM results defaults"
    if path is not None:
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: not found; give a YAML file with the keys of {_defaults_name()} to change")
        try:
            override = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise RecordError(f"{path}: not readable YAML ({err}); fix the file") from None
        if not isinstance(override, dict):
            raise RecordError(f"{path}: expected keys and values (a YAML mapping); see {_defaults_name()}")
        data, where = _merged(data, override), str(path)
    return record_from_dict(DicomResultSettings, data, where, f"see {_defaults_name()} for the keys")


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        nested = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if nested else value
    return merged


def _defaults_name() -> str:
    return "dernet/dicom_results/defaults.yaml"
