"""Evaluate the members and the ensemble on a split: metrics with bootstrap intervals, Markdown/JSON, ROC plot."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_figure_atomic, write_json_atomic, write_text_atomic
from ..metrics import binary_metrics, bootstrap_intervals
from ..metrics.classification import METRIC_NAMES
from .ensemble_config import EnsembleConfig
from .fit_ensemble import member_probabilities
from .voting import combine

__all__ = ["evaluate_ensemble", "format_table"]

HEADERS = {
    "auroc": "AUROC",
    "f1": "F1",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "accuracy": "Accuracy",
}


def evaluate_ensemble(config: EnsembleConfig, split: str = "test") -> dict[str, Any]:
    """Score every member (at its own Youden threshold) and the ensemble (at the saved threshold) on ``split``."""
    saved_path = Path(config.output)
    if not saved_path.is_file():
        raise FileNotFoundError(f"{saved_path}: no fitted ensemble; run `python -m dernet fit-ensemble` first")
    saved = json.loads(saved_path.read_text())
    names = [m["name"] for m in saved["members"]]
    config_members = dict(zip(names, (m["checkpoint"] for m in saved["members"]), strict=True))
    probs, rows = member_probabilities(_with_members(config, config_members), split)
    labels = rows.abnormal.to_numpy().astype(int)
    scores = {name: (probs[:, m], saved["members"][m]["threshold"]) for m, name in enumerate(names)}
    scores["ensemble"] = (combine(probs, saved["weights"], saved["combine"]), saved["threshold"])
    results: dict[str, Any] = {
        "split": split,
        "images": int(len(labels)),
        "abnormal": int(labels.sum()),
        "bootstrap_resamples": config.bootstrap_resamples,
        "models": {},
    }
    for name, (score, threshold) in scores.items():
        point = binary_metrics(labels, score, threshold).as_dict()
        intervals = bootstrap_intervals(labels, score, threshold, config.bootstrap_resamples)
        results["models"][name] = {"threshold": threshold, "metrics": point, "ci95": intervals}
    out = config.output_dir
    write_json_atomic(out / f"evaluation_{split}.json", results)
    write_text_atomic(out / f"evaluation_{split}.md", format_table(results) + "\n")
    _plot_roc(labels, scores, out / f"roc_{split}.png", split)
    return results


def _with_members(config: EnsembleConfig, members: dict[str, str]) -> EnsembleConfig:
    return replace(config, members=members)


def format_table(results: dict[str, Any]) -> str:
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


def _plot_roc(labels: np.ndarray, scores: dict[str, tuple[np.ndarray, float]], path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=120)
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
    plt.close(fig)
