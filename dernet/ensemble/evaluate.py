"""Evaluate the members and the ensemble on a split: metrics with bootstrap intervals, Markdown/JSON, ROC plot."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import MissingFileError
from ..fileio import write_json_atomic, write_text_atomic
from ..metrics import binary_metrics, bootstrap_intervals
from ..metrics.tables import classification_table, plot_roc
from .ensemble_config import EnsembleConfig
from .fit_ensemble import member_probabilities
from .voting import combine

__all__ = ["evaluate_ensemble", "format_table"]

format_table = classification_table  # the table `python -m dernet evaluate` prints


def evaluate_ensemble(config: EnsembleConfig, split: str = "test") -> dict[str, Any]:
    """Score every member (at its own Youden threshold) and the ensemble (at the saved threshold) on ``split``."""
    saved_path = Path(config.output)
    if not saved_path.is_file():
        raise MissingFileError(f"{saved_path}: no fitted ensemble; run `python -m dernet fit-ensemble` first")
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
    write_text_atomic(out / f"evaluation_{split}.md", classification_table(results) + "\n")
    plot_roc(labels, scores, out / f"roc_{split}.png", split)
    return results


def _with_members(config: EnsembleConfig, members: dict[str, str]) -> EnsembleConfig:
    return replace(config, members=members)
