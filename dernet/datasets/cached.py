"""The prepared PNG cache, read one way: every loader, export check and calibration goes through here.

A missing or unreadable cache file is an error that names it (never skipped, never replaced by noise): a model
checked or calibrated on something other than the prepared data would be checked on nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from ..errors import MissingFileError, UsageError
from .tables import read_table, split_rows

__all__ = ["read_cached_image", "sample_inputs"]

T = TypeVar("T")


def read_cached_image(path: str | os.PathLike) -> np.ndarray:
    """A cached windowed image as 8-bit grayscale [H, W]; a missing or unreadable file raises naming it."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise MissingFileError(f"{path}: missing or unreadable cache file; run `spine-cad prepare` again")
    return image


def sample_inputs(
    data_dir: str | os.PathLike,
    split: str,
    count: int,
    make: Callable[[np.ndarray], T],
    order: str = "first",
) -> list[T]:
    """``make(cached image)`` for ``count`` images of ``split``: the inputs export checks and calibration run on.

    ``order``: ``first`` (table order), ``abnormal_first`` (images with lesions first, so a detector check sees
    boxes) or ``spread`` (evenly over the split, normal and abnormal alike, for calibration).
    """
    data_dir = Path(data_dir)
    rows = split_rows(read_table(data_dir), split)
    if rows.empty:
        raise UsageError(f"{data_dir}: the {split} split has no images to check or calibrate on")
    if order == "abnormal_first":
        rows = rows.sort_values("abnormal", ascending=False, kind="stable")
    elif order == "spread":
        rows = rows.iloc[np.linspace(0, len(rows) - 1, min(count, len(rows))).round().astype(int)]
    elif order != "first":
        raise ValueError(f"order must be first, abnormal_first or spread, got '{order}'")
    return [make(read_cached_image(data_dir / path)) for path in rows.path.head(count)]
