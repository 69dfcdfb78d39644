"""Evaluate the members and the ensemble on a split: metrics with bootstrap intervals, Markdown/JSON, ROC plot."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..fileio import write_json_atomic, write_text_atomic
from ..metrics import binary_metrics, bootstrap_intervals
from ..metrics.tables import classification_table, plot_roc
from .ensemble_config import EnsembleConfig
from .fit_ensemble import member_probabilities
from .record import load_ensemble
from .voting import combine

__all__ = ["evaluate_ensemble", "format_table"]

format_table = classification_table  # the table `python -m dernet evaluate` prints


def evaluate_ensemble(config: EnsembleConfig, split: str = "test") -> dict[str, Any]:
    """Score every member (at its own Youden threshold) and the ensemble (at the saved threshold) on ``split``."""
    saved = load_ensemble(config.output)
    probs, rows, _ = member_probabilities(replace(config, members={m.name: m.checkpoint for m in saved.members}), split)
    labels = rows.abnormal.to_numpy().astype(int)
    scores = {m.name: (probs[:, i], m.threshold) for i, m in enumerate(saved.members)}
    scores["ensemble"] = (combine(probs, saved.weights, saved.combine), saved.threshold)
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
    write_text_atomic(out / f"evaluation_{split}.md", classification_table(results) + "\n")
    plot_roc(labels, scores, out / f"roc_{split}.png", split)
    return results
