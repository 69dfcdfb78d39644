"""``<prepared>/preprocessing.json``: how the prepared cache was made and how every loader must finish it.

`prepare` writes it (CLAHE from the ``preprocessing`` section of configs/data.yaml); both trainers take their CLAHE
from it (a config overrides only explicitly, and the value used is stored with the trained model); export checks that
every model was trained with the same values. One home for the setting, so serving cannot drift from training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import UsageError, UserError
from ..imaging import AUTO_WINDOW_PERCENTILES, ClaheParams
from ..records import RECORD_CONFIG, load_record, save_record

__all__ = [
    "PREPROCESSING_FILE",
    "DataPreprocessing",
    "PreprocessingMismatchError",
    "agreed_clahe",
    "check_input_fits",
    "read_data_preprocessing",
    "resolve_clahe",
]

PREPROCESSING_FILE = "preprocessing.json"
PREPARE_FIX = "run `spine-cad prepare` (python -m dernet.datasets prepare) again"


@dataclass(frozen=True)
class DataPreprocessing:
    """The prepared data's preprocessing: the cache (windowed, resized, 8-bit) and the CLAHE loaders apply."""

    __pydantic_config__ = RECORD_CONFIG
    FORMAT_VERSION: ClassVar[int] = 1

    cache_long_side: int  # px: long side of the cached PNGs
    clahe_clip_limit: float = 2.0  # applied when a loader reads the cache, not stored in it
    clahe_tile_grid: int = 8
    window_fallback_percentiles: tuple[float, float] = AUTO_WINDOW_PERCENTILES  # window of a file without one

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.clahe_clip_limit, self.clahe_tile_grid)

    def save(self, data_dir: str | os.PathLike) -> Path:
        return save_record(self, Path(data_dir) / PREPROCESSING_FILE)


def read_data_preprocessing(data_dir: str | os.PathLike) -> DataPreprocessing:
    """The prepared folder's preprocessing record; missing or malformed names the file and says to prepare again."""
    return load_record(DataPreprocessing, Path(data_dir) / PREPROCESSING_FILE, PREPARE_FIX)


def check_input_fits(data_dir: str | os.PathLike, input_size: int, what: str) -> None:
    """Refuse a model input larger than the cache's long side: training would upsample the cache (a blur the gate,
    which reads the original file, never sees), so the cache must be prepared at least that large."""
    cache = read_data_preprocessing(data_dir).cache_long_side
    if input_size > cache:
        raise UsageError(
            f"{Path(data_dir) / PREPROCESSING_FILE}: the cache is {cache} px, smaller than {what} {input_size}; "
            f"prepare again with --long-side {input_size} (spine-cad prepare ... --long-side {input_size})"
        )


def resolve_clahe(data_dir: str | os.PathLike, clip_limit: float | None, tile_grid: int | None) -> ClaheParams:
    """The prepared data's CLAHE, with a trainer's explicit overrides (None: take the prepared value)."""
    prepared = read_data_preprocessing(data_dir).clahe
    return ClaheParams(
        prepared.clip_limit if clip_limit is None else float(clip_limit),
        prepared.tile_grid if tile_grid is None else int(tile_grid),
    )


class PreprocessingMismatchError(UserError, ValueError):
    """Two models trained with different preprocessing: serving them together would differ from training."""


def agreed_clahe(trained: list[tuple[str, ClaheParams]]) -> ClaheParams:
    """The CLAHE that every model (``(file it was read from, params)``) was trained with; raises naming the first two
    files that disagree and their values."""
    first_file, first = trained[0]
    for file, params in trained[1:]:
        if params != first:
            raise PreprocessingMismatchError(
                f"{file} was trained with CLAHE clip limit {params.clip_limit:g}, tile grid {params.tile_grid} but "
                f"{first_file} with clip limit {first.clip_limit:g}, tile grid {first.tile_grid}; retrain one of them "
                f"on the same preprocessing ({PREPROCESSING_FILE} of the prepared data, or the same override in both "
                "configs)"
            )
    return first
