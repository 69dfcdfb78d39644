"""Evaluate a lesion-type member (task multilabel or multiclass) on a split: per-class metrics with the thresholds
chosen on validation, Markdown and JSON, and the confusion matrix (PNG and Markdown) for one class per image."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..datasets.tables import read_table, split_rows
from ..errors import UsageError
from ..fileio import write_json_atomic, write_text_atomic
from ..metrics.types import (
    confusion_markdown,
    multiclass_metrics,
    multilabel_metrics,
    multilabel_thresholds,
    plot_confusion,
)
from .predict import load_members, predict_probabilities
from .tasks import task_classes, task_targets

__all__ = ["evaluate_types", "types_out_dir", "types_table"]


def evaluate_types(
    checkpoint: str | Path,
    data_dir: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    resamples: int = 1000,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Score ``checkpoint`` on ``split`` of ``data_dir``; write ``types_<split>.{json,md}`` (and, multiclass,
    ``confusion_<split>.png``) to ``out_dir`` (default: the run's ``evaluation/`` folder). Multilabel thresholds are
    each class's Youden point on the validation split, which therefore never is the split scored here unless asked."""
    checkpoint, data_dir = Path(checkpoint), Path(data_dir)
    (model,), clahe = load_members([checkpoint])  # with the CLAHE it was trained with
    task, classes = model.hparams.task, list(model.hparams.classes)
    if task == "binary":
        raise UsageError(f"{checkpoint}: a binary member; score it (and its ensemble) with evaluate-ensemble")
    if task_classes(task, data_dir) != classes:
        raise ConfigError(f"{checkpoint}: trained on the classes {classes}, but {data_dir} has others")
    table = read_table(data_dir)

    def scores(name: str):
        rows = split_rows(table, name)
        if rows.empty:
            raise UsageError(f"{data_dir}: the {name} split has no images")
        probs = predict_probabilities(model, data_dir, rows, clahe, batch_size, desc=f"{checkpoint.parent.parent.name} "
                                      f"on {name}")  # fmt: skip
        return task_targets(rows, task, classes), probs

    targets, probs = scores(split)
    results: dict[str, Any] = {
        "task": task,
        "classes": classes,
        "checkpoint": str(checkpoint),
        "data_dir": str(data_dir),
        "split": split,
        "images": int(len(targets)),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    out = types_out_dir(checkpoint, out_dir)
    if task == "multilabel":
        val_targets, val_probs = (targets, probs) if split == "val" else scores("val")
        thresholds = multilabel_thresholds(val_targets, val_probs)
        results["thresholds"] = {"values": thresholds, "chosen_on": {"split": "val", "images": len(val_targets),
                                 "rule": "Youden (per class); 0.5 where validation has one side only"}}  # fmt: skip
        results["bootstrap_resamples"] = resamples
        results.update(multilabel_metrics(targets, probs, thresholds, classes, resamples))
    else:
        results.update(multiclass_metrics(targets, probs, classes))
        plot_confusion(results["confusion"], classes, out / f"confusion_{split}.png", f"{split}: row-normalized")
    write_json_atomic(out / f"types_{split}.json", results)
    write_text_atomic(out / f"types_{split}.md", types_table(results) + "\n")
    return results


def types_out_dir(checkpoint: str | Path, out_dir: str | Path | None = None) -> Path:
    """Where evaluate-types writes: ``out_dir``, else ``evaluation/`` beside the run's ``checkpoints/``."""
    return Path(out_dir) if out_dir is not None else Path(checkpoint).parent.parent / "evaluation"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def types_table(results: dict[str, Any]) -> str:
    """Markdown: per-class rows (multilabel: with 95% intervals; multiclass: and the confusion matrix)."""
    head = f"Split `{results['split']}`: {results['images']} images; task {results['task']}."
    if results["task"] == "multilabel":
        lines = [
            head + f" Thresholds chosen on val; 95% CI from {results['bootstrap_resamples']} bootstrap resamples.",
            "",
            "| Class | Positives | Threshold | AUROC | Sensitivity | Specificity |",
            "|---|---|---|---|---|---|",
        ]
        for name, entry in results["per_class"].items():
            if entry["metrics"] is None:
                lines.append(f"| {name} | {entry['positives']} | {entry['threshold']:.3f} | – | – | – |")
                continue
            cells = [
                f"{_pct(entry['metrics'][m])} ({_pct(entry['ci95'][m][0])}–{_pct(entry['ci95'][m][1])})"
                for m in ("auroc", "sensitivity", "specificity")
            ]
            lines.append(f"| {name} | {entry['positives']} | {entry['threshold']:.3f} | " + " | ".join(cells) + " |")
        lines += ["", f"Macro AUROC over the classes this split can score: {_pct(results['macro_auroc'])}"]
        return "\n".join(lines)
    lines = [
        head + f" Accuracy {_pct(results['accuracy'])}.",
        "",
        "| Class | Images | Precision | Recall (sensitivity) | Specificity | F1 | AUROC (one vs rest) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in [*results["per_class"].items(), ("**macro**", {**results["macro"], "support": results["images"]})]:
        cells = [_pct(e[m]) for m in ("precision", "recall", "specificity", "f1", "auroc")]
        lines.append(f"| {name} | {e['support']} | " + " | ".join(cells) + " |")
    lines += ["", "Confusion matrix (rows: true class; row fraction and count):", ""]
    lines.append(confusion_markdown(results["confusion"], results["classes"]))
    return "\n".join(lines)
