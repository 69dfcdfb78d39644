"""What a member learns: binary triage (normal vs abnormal), multi-label lesion types (the seven VinDr-SpineXR
classes, image-level targets from the boxes) or one class per image (a folder-per-class dataset, Ghauri et al.).

The targets and class weights come from the prepared table, so training, prediction and evaluation agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import CLASS_NAMES
from ..config import ConfigError, check_choice
from ..datasets.tables import read_summary

__all__ = ["TASKS", "class_weights", "task_classes", "task_targets"]

TASKS = ("binary", "multilabel", "multiclass")


def task_classes(task: str, data_dir: str | Path) -> list[str]:
    """The output names: ['abnormal'] (binary), the seven lesion classes (multilabel), the dataset's classes
    (multiclass: a folder-per-class dataset's summary.json names them)."""
    check_choice("task", task, TASKS)
    if task == "binary":
        return ["abnormal"]
    summary = read_summary(data_dir)
    if task == "multilabel":
        if summary.get("layout") == "imagefolder":
            raise ConfigError(f"{data_dir}: a folder-per-class dataset has one class per image; use task: multiclass")
        return list(CLASS_NAMES)
    if summary.get("layout") != "imagefolder":
        raise ConfigError(
            f"{data_dir}: task multiclass needs a folder-per-class dataset "
            "(python -m dernet.datasets prepare --layout imagefolder)"
        )
    return list(summary["classes"])


def task_targets(rows: pd.DataFrame, task: str, classes: list[str]) -> np.ndarray:
    """float32 [N] (binary), float32 [N, K] (multilabel: 1 where the image has a box of that class), int64 [N]
    (multiclass: the class index)."""
    if task == "binary":
        return rows.abnormal.to_numpy(dtype=np.float32)
    if task == "multilabel":
        types = [set(t.split(";")) if isinstance(t, str) else set() for t in rows.lesion_types]  # NaN: no lesions
        return np.array([[name in found for name in classes] for found in types], dtype=np.float32).reshape(
            len(rows), len(classes)
        )
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(rows.label) - set(index))
    if unknown:
        raise ConfigError(f"labels {unknown} are not among the classes {classes}; prepare the data again")
    return np.array([index[label] for label in rows.label], dtype=np.int64)


def class_weights(targets: np.ndarray, task: str, classes: int) -> float | list[float]:
    """Loss weights for imbalance: negatives/positives (binary: one number; multilabel: per class, 1 for a class
    with no positives) or inverse class frequency N / (K * n_k) (multiclass cross-entropy)."""
    if task == "binary":
        positives = float(targets.sum())
        return (len(targets) - positives) / positives
    if task == "multilabel":
        positives = targets.sum(axis=0)
        return [float((len(targets) - p) / p) if p else 1.0 for p in positives]
    counts = np.bincount(targets, minlength=classes)
    return [float(len(targets) / (classes * c)) if c else 1.0 for c in counts]
