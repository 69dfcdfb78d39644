"""Result tables (Markdown, in the papers' layouts) and plots shared by every evaluation: PyTorch and ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..classes import CLASS_NAMES, PAPER_LABELS, PAPER_ORDER
from ..fileio import write_figure_atomic
from .classification import METRIC_NAMES

__all__ = ["classification_table", "detection_table", "plot_confusion", "plot_pr", "plot_roc"]
HEADERS = {
    "auroc": "AUROC",
    "f1": "F1",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "accuracy": "Accuracy",
}


def classification_table(results: dict[str, Any]) -> str:
    """Markdown shaped like the DERNet paper's Table 2: percentages with 95% bootstrap intervals."""
    lines = [
        f"Split `{results['split']}`: {results['images']} images ({results['abnormal']} abnormal); "
        f"95% CI from {results['bootstrap_resamples']} bootstrap resamples.",
        "",
        "| Model | " + " | ".join(HEADERS[n] for n in METRIC_NAMES) + " |",
        "|---|" + "---|" * len(METRIC_NAMES),
    ]
    for name, entry in results["models"].items():
        cells = []
        for metric in METRIC_NAMES:
            low, high = entry["ci95"][metric]
            cells.append(f"{100 * entry['metrics'][metric]:.2f} ({100 * low:.2f}–{100 * high:.2f})")
        label = f"**{name}**" if name == "ensemble" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detection_table(rows: dict[str, dict[str, Any]]) -> str:
    """AP@0.5 per class (percent) in the papers' column order (LT2 ... LT13) and mAP, one row per entry."""
    names = [CLASS_NAMES[k] for k in PAPER_ORDER]
    header = "| | " + " | ".join(f"{label} {name}" for label, name in zip(PAPER_LABELS, names, strict=True))
    lines = [header + " | mAP@0.5 |", "|---|" + "---|" * (len(names) + 1)]
    for label, result in rows.items():
        cells = ["–" if result["ap50"][n] is None else f"{100 * result['ap50'][n]:.2f}" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {100 * result['map50']:.2f} |")
    return "\n".join(lines)


def plot_roc(labels: np.ndarray, scores: dict[str, tuple[np.ndarray, float]], path: Path, split: str) -> None:
    """ROC curves of every model and the ensemble's operating point, written to ``path``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = Figure(figsize=(5.5, 5.5), dpi=120)  # a bare Figure: no pyplot state, the caller's backend untouched
    ax = fig.subplots()
    for name, (score, threshold) in scores.items():
        fpr, tpr, _ = roc_curve(labels, score)
        style = {"linewidth": 2.5, "color": "black"} if name == "ensemble" else {"linewidth": 1.2}
        ax.plot(fpr, tpr, label=f"{name} (AUROC {roc_auc_score(labels, score):.3f})", **style)
        if name == "ensemble":
            decisions = score >= threshold
            sens = decisions[labels == 1].mean()
            spec = 1 - decisions[labels == 0].mean()
            ax.plot(
                1 - spec,
                sens,
                "o",
                color="crimson",
                markersize=8,
                label=f"operating point (threshold {threshold:.3f})",
            )
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title=f"ROC on the {split} split",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure_atomic(fig, path)


def plot_confusion(labels: np.ndarray, score: np.ndarray, threshold: float, path: Path, title: str) -> None:
    """The confusion matrix of ``score`` at ``threshold`` (normal / abnormal counts), written to ``path``."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(4.2, 3.8), dpi=120)
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        labels, (score >= threshold).astype(int), labels=[0, 1], display_labels=["normal", "abnormal"], ax=ax,
        cmap="Blues", colorbar=False,
    )  # fmt: skip
    ax.set_title(f"{title}\nthreshold {threshold:.3f}", fontsize=10)
    fig.tight_layout()
    write_figure_atomic(fig, path)


def plot_pr(result: dict[str, Any], path: Path) -> None:
    """Precision-recall curves at IoU 0.5 per class (an :func:`dernet.metrics.average_precision_50` result)."""
    fig = Figure(figsize=(6, 5), dpi=120)
    ax = fig.subplots()
    for k in PAPER_ORDER:
        name = CLASS_NAMES[k]
        if result["precision"][name] is not None:
            ax.plot(result["recall"], result["precision"][name], label=f"{name} (AP {100 * result['ap50'][name]:.1f})")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"PR at IoU 0.5, {result['split']} split (mAP {100 * result['map50']:.1f})",
    )
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    write_figure_atomic(fig, path)
