"""Weighted soft voting over member probabilities, and choosing the weights on validation data."""

from __future__ import annotations

import itertools
import math

import numpy as np
from sklearn.metrics import roc_auc_score

from ..errors import UsageError

__all__ = [
    "COMBINE_MODES",
    "MAX_GRID_POINTS",
    "PAPER_WEIGHTS",
    "PAPER_WEIGHTS_BY_MEMBER",
    "combine",
    "fit_weights",
    "grid_points",
    "simplex_grid",
]

# DERNet paper: DenseNet121, EfficientNetV2-S, ResNet50 (by member name, so member order cannot swap them).
PAPER_WEIGHTS_BY_MEMBER = {"densenet121": 0.42, "tf_efficientnetv2_s": 0.32, "resnet50": 0.26}
PAPER_WEIGHTS = tuple(PAPER_WEIGHTS_BY_MEMBER.values())
COMBINE_MODES = ("probability", "logit")
MAX_GRID_POINTS = 25_000  # 4 members on a 0.02 grid (23,426 weightings); 5 members need a 0.05 grid (10,626)
_EPS = 1e-6


def combine(member_probs: np.ndarray, weights: np.ndarray | tuple[float, ...], mode: str = "probability") -> np.ndarray:
    """Ensemble probability from member probabilities [N, M].

    'probability': sum_m w_m p_m (the DERNet rule); 'logit': sigmoid(sum_m w_m logit(p_m)), the weighted
    logit average of the VinDr-SpineXR code. Weights are normalized to sum to 1.
    """
    probs = np.asarray(member_probs, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(w):
        raise ValueError(f"expected probabilities [N, {len(w)}] for {len(w)} weights, got {probs.shape}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(w)}")
    w = w / w.sum()
    if mode == "probability":
        return probs @ w
    if mode == "logit":
        clipped = np.clip(probs, _EPS, 1 - _EPS)
        return 1.0 / (1.0 + np.exp(-(np.log(clipped / (1 - clipped)) @ w)))
    raise ValueError(f"mode must be one of {', '.join(COMBINE_MODES)}, got '{mode}'")


def grid_points(members: int, step: float) -> int:
    """How many weight vectors :func:`simplex_grid` yields (each costs one AUROC when fitting)."""
    return math.comb(round(1 / step) + members - 1, members - 1)


def simplex_grid(members: int, step: float) -> np.ndarray:
    """All weight vectors on the simplex with coordinates in multiples of ``step``."""
    ticks = round(1 / step)
    rows = [c for c in itertools.product(range(ticks + 1), repeat=members - 1) if sum(c) <= ticks]
    return np.array([[*c, ticks - sum(c)] for c in rows], dtype=np.float64) / ticks


def fit_weights(
    member_probs: np.ndarray, labels: np.ndarray, step: float = 0.02, mode: str = "probability"
) -> tuple[np.ndarray, float]:
    """The grid point of the weight simplex with the best AUROC on the given (validation) data.

    Ties go to the most even weights, so an uninformative search does not drift to a corner.
    """
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        raise UsageError("fitting weights needs both normal and abnormal images in the validation split")
    best_key, best = None, None
    for w in simplex_grid(np.asarray(member_probs).shape[1], step):
        auroc = roc_auc_score(labels, combine(member_probs, w, mode))
        key = (round(auroc, 12), -float(np.abs(w - w.mean()).sum()))
        if best_key is None or key > best_key:
            best_key, best = key, w
    return best, float(best_key[0])
