"""Binary classification metrics from scikit-learn, with percentile-bootstrap confidence intervals."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, recall_score, roc_auc_score, roc_curve

__all__ = ["METRIC_NAMES", "BinaryMetrics", "binary_metrics", "bootstrap_intervals", "youden_threshold"]

METRIC_NAMES = ("auroc", "f1", "sensitivity", "specificity", "accuracy")


@dataclass(frozen=True)
class BinaryMetrics:
    auroc: float
    f1: float
    sensitivity: float
    specificity: float
    accuracy: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def binary_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float) -> BinaryMetrics:
    """AUROC from the scores; the rest from the decisions ``probs >= threshold``."""
    labels = np.asarray(labels).astype(int)
    decisions = (np.asarray(probs) >= threshold).astype(int)
    both = len(np.unique(labels)) == 2
    return BinaryMetrics(
        auroc=float(roc_auc_score(labels, probs)) if both else float("nan"),
        f1=float(f1_score(labels, decisions, zero_division=0)),
        sensitivity=float(recall_score(labels, decisions, pos_label=1, zero_division=0)),
        specificity=float(recall_score(labels, decisions, pos_label=0, zero_division=0)),
        accuracy=float(accuracy_score(labels, decisions)),
    )


def bootstrap_intervals(
    labels: np.ndarray,
    probs: np.ndarray,
    threshold: float,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of every metric, resampling images with replacement.

    Resamples holding a single class (no AUROC) are drawn again, as in the VinDr-SpineXR protocol.
    """
    labels, probs = np.asarray(labels).astype(int), np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    samples: list[BinaryMetrics] = []
    while len(samples) < resamples:
        index = rng.integers(0, len(labels), len(labels))
        if len(np.unique(labels[index])) == 2:
            samples.append(binary_metrics(labels[index], probs[index], threshold))
    tail = (1 - confidence) / 2 * 100
    return {
        name: tuple(float(v) for v in np.percentile([getattr(s, name) for s in samples], [tail, 100 - tail]))
        for name in METRIC_NAMES
    }


def youden_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The score threshold maximizing sensitivity + specificity - 1 on the ROC curve (scikit-learn's)."""
    fpr, tpr, thresholds = roc_curve(np.asarray(labels).astype(int), probs)
    finite = np.isfinite(thresholds)  # the first threshold is +inf (nothing called positive)
    best = np.argmax((tpr - fpr)[finite])
    return float(thresholds[finite][best])
