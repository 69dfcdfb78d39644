"""Lesion-type metrics (scikit-learn's): per-class AUROC with bootstrap intervals for multi-label outputs; accuracy,
per-class precision/recall/F1/sensitivity/specificity, one-vs-rest AUROC and the confusion matrix for one class per
image; the confusion matrix as Markdown and as a row-normalized plot (Ghauri et al.'s Figure 4 layout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from ..fileio import write_figure_atomic
from .classification import binary_metrics, bootstrap_intervals, youden_threshold

__all__ = [
    "confusion_markdown",
    "multiclass_metrics",
    "multilabel_metrics",
    "multilabel_thresholds",
    "plot_confusion",
    "row_normalized",
]


def _scorable(labels: np.ndarray) -> bool:
    return len(np.unique(labels)) == 2


def multilabel_thresholds(targets: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """Each class's Youden threshold (on validation); None for a class the data has only one side of."""
    return [
        youden_threshold(targets[:, k], probs[:, k]) if _scorable(targets[:, k]) else None
        for k in range(targets.shape[1])
    ]


def multilabel_metrics(
    targets: np.ndarray,
    probs: np.ndarray,
    thresholds: list[float | None],
    classes: list[str],
    resamples: int = 1000,
    seed: int = 42,
) -> dict[str, Any]:
    """Per class: positives, AUROC, sensitivity, specificity, F1 and accuracy at its threshold (0.5 where validation
    chose none), each with a 95% bootstrap interval; and the macro AUROC over the classes this split can score."""
    per_class = {}
    for k, name in enumerate(classes):
        labels, scores = targets[:, k].astype(int), probs[:, k]
        threshold = 0.5 if thresholds[k] is None else float(thresholds[k])
        entry: dict[str, Any] = {"positives": int(labels.sum()), "threshold": threshold}
        if _scorable(labels):
            entry["metrics"] = binary_metrics(labels, scores, threshold).as_dict()
            entry["ci95"] = bootstrap_intervals(labels, scores, threshold, resamples, seed=seed)
        else:
            entry["metrics"], entry["ci95"] = None, None  # no AUROC without both sides
        per_class[name] = entry
    scored = [e["metrics"]["auroc"] for e in per_class.values() if e["metrics"] is not None]
    return {"per_class": per_class, "macro_auroc": float(np.mean(scored)) if scored else None}


def multiclass_metrics(labels: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Top-class decisions scored against ``labels`` (class indices): accuracy; per class precision, recall (=
    sensitivity), F1, specificity and one-vs-rest AUROC; macro averages; the confusion matrix (rows: truth)."""
    labels = np.asarray(labels).astype(int)
    predicted = np.asarray(probs).argmax(axis=1)
    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    matrix = confusion_matrix(labels, predicted, labels=indices)
    per_class = {}
    for k, name in enumerate(classes):
        negatives = matrix.sum() - matrix[k].sum()  # images of other classes
        false_positives = matrix[:, k].sum() - matrix[k, k]
        ovr = labels == k
        per_class[name] = {
            "support": int(support[k]),
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "sensitivity": float(recall[k]),
            "specificity": float((negatives - false_positives) / negatives) if negatives else float("nan"),
            "f1": float(f1[k]),
            "auroc": float(roc_auc_score(ovr, probs[:, k])) if _scorable(ovr) else None,
        }
    macro = {
        metric: float(np.nanmean([e[metric] for e in per_class.values() if e[metric] is not None]))
        for metric in ("precision", "recall", "sensitivity", "specificity", "f1", "auroc")
    }
    return {
        "images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro": macro,
        "per_class": per_class,
        "confusion": matrix.tolist(),
        "confusion_normalized": row_normalized(matrix).round(6).tolist(),
    }


def row_normalized(matrix: np.ndarray) -> np.ndarray:
    """Each row (a true class) divided by its count; an empty row stays zero."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_markdown(matrix: np.ndarray, classes: list[str]) -> str:
    """The confusion matrix as a Markdown table: rows the true class, columns the predicted one, each cell the
    row fraction and the count."""
    matrix = np.asarray(matrix)
    normalized = row_normalized(matrix)
    lines = [
        "| true \\ predicted | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for k, name in enumerate(classes):
        cells = [f"{normalized[k, j]:.2f} ({int(matrix[k, j])})" for j in range(len(classes))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_confusion(matrix: np.ndarray, classes: list[str], path: str | Path, title: str) -> None:
    """The row-normalized confusion matrix as a heat map with each cell's fraction (and count) written in it."""
    matrix = np.asarray(matrix)
    normalized = row_normalized(matrix)
    size = 1.6 + 1.1 * len(classes)
    fig = Figure(figsize=(size + 1.2, size), dpi=120, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), value in np.ndenumerate(normalized):
        colour = "white" if value > 0.6 else "black"
        ax.text(col, row, f"{value:.2f}\n({int(matrix[row, col])})", ha="center", va="center", color=colour)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    write_figure_atomic(fig, path)
