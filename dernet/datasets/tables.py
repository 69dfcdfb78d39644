"""The prepared dataset's tables: classification.csv (and its train/val/test rows) and summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import MissingFileError

__all__ = ["read_summary", "read_table", "split_rows"]


def read_table(data_dir: str | Path) -> pd.DataFrame:
    """``<data_dir>/classification.csv`` with ids kept as strings."""
    path = Path(data_dir) / "classification.csv"
    if not path.is_file():
        raise MissingFileError(f"{path}: not found; run `python -m dernet.datasets prepare` first")
    return pd.read_csv(path, dtype={"image_id": str, "study_id": str, "lesion_types": str})


def split_rows(table: pd.DataFrame, split: str, val_fold: int | None = None) -> pd.DataFrame:
    """Rows of ``split`` ('train', 'val' or 'test'); with ``val_fold``, train/val are re-drawn from the folds."""
    if split == "test" or val_fold is None:
        return table[table.split == split].reset_index(drop=True)
    development = table[table.split != "test"]
    held_out = development.fold == val_fold
    return development[held_out if split == "val" else ~held_out].reset_index(drop=True)


def read_summary(data_dir: str | Path) -> dict[str, Any]:
    """``<data_dir>/summary.json``: counts per split and class, and the parameters (cache ``long_side``) it was made
    with."""
    path = Path(data_dir) / "summary.json"
    if not path.is_file():
        raise MissingFileError(f"{path}: not found; run `python -m dernet.datasets prepare` first")
    return json.loads(path.read_text())
