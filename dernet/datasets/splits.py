"""Study-level folds for validation: no study ever has images on two sides of a split."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from ..config import ConfigError

__all__ = ["assign_folds", "rarest_label"]


def assign_folds(study_ids: Sequence[str], strata: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Fold index (0..folds-1) per image, grouped by study and stratified by ``strata`` where possible.

    ``strata`` is one label per image (e.g. 'normal' or its rarest lesion type), so each fold gets a similar
    mix of findings. When no stratum has ``folds`` members (small data), it stratifies by normal/abnormal,
    then not at all; grouping by study always holds.
    """
    n_studies = len(set(study_ids))
    if n_studies < folds:
        raise ConfigError(f"{n_studies} training studies cannot be split into {folds} folds; lower 'folds'")
    coarse = ["normal" if s == "normal" else "abnormal" for s in strata]
    for labels in (list(strata), coarse):
        if max(Counter(labels).values()) >= folds:
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            return _fold_column(splitter.split(np.zeros(len(labels)), labels, groups=study_ids), len(labels))
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return _fold_column(splitter.split(np.zeros(len(strata)), groups=study_ids), len(strata))


def _fold_column(splits, size: int) -> np.ndarray:
    assigned = np.full(size, -1, dtype=int)
    with warnings.catch_warnings():
        # Rare classes with fewer members than folds are expected; the split stays valid.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for fold, (_, held_out) in enumerate(splits):
            assigned[held_out] = fold
    return assigned


def rarest_label(labels: set[str], frequency: Counter) -> str:
    """Stratum of one image: 'normal', or the least frequent of its lesion types."""
    if not labels:
        return "normal"
    return min(sorted(labels), key=lambda name: frequency[name])
