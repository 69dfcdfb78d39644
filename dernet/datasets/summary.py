"""summary.json of a prepared dataset: images and boxes per split and class (the papers' Table 1 shape)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .vindr import CLASS_NAMES, PAPER_ORDER, AnnotatedImage

__all__ = ["build_summary", "format_summary"]


def build_summary(
    table: pd.DataFrame,
    annotations: dict[str, AnnotatedImage],
    results: Iterable[Any],
    remapped: Counter,
    config: Any,
    source: Path,
) -> dict[str, Any]:
    """Counts per split (images, normal/abnormal, images and boxes per class) and what was dropped."""
    results = list(results)
    splits: dict[str, Any] = {}
    for split in ("train", "val", "test"):
        rows = table[table.split == split]
        per_class = {name: {"images": 0, "boxes": 0} for name in CLASS_NAMES}
        for image_id in rows.image_id:
            for name in annotations[image_id].lesion_types:
                per_class[name]["images"] += 1
            for box in annotations[image_id].boxes:
                per_class[CLASS_NAMES[box.class_id]]["boxes"] += 1
        splits[split] = {
            "images": int(len(rows)),
            "studies": int(rows.study_id.nunique()),
            "normal": int((rows.abnormal == 0).sum()),
            "abnormal": int((rows.abnormal == 1).sum()),
            "per_class": per_class,
        }
    skipped = [r for r in results if r.error]
    return {
        "classes": list(CLASS_NAMES),
        "splits": splits,
        "dropped_boxes": {
            "degenerate": sum(r.dropped_boxes for r in results if not r.error),
            "missing_coordinates": sum(a.missing_coordinates for a in annotations.values()),
        },
        "remapped_lesion_types": dict(sorted(remapped.items())),
        "skipped_images": [{"image_id": r.image_id, "split": r.split, "reason": r.error} for r in skipped],
        "reused_images": sum(1 for r in results if r.reused),
        "params": {k: v for k, v in vars(config).items() if k != "workers"},
        "source": str(source),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A Markdown table of images/boxes per class and split, classes in the papers' order."""
    splits = {name: summary["splits"][name] for name in ("train", "val", "test") if name in summary["splits"]}
    lines = [
        "| class | " + " | ".join(f"{name} images | {name} boxes" for name in splits) + " |",
        "|" + "---|" * (1 + 2 * len(splits)),
    ]
    for class_id in PAPER_ORDER:
        name = CLASS_NAMES[class_id]
        cells = [f"{s['per_class'][name]['images']} | {s['per_class'][name]['boxes']}" for s in splits.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key in ("normal", "abnormal", "images"):
        lines.append(f"| {key} (all) | " + " | ".join(f"{s[key]} | " for s in splits.values()) + " |")
    dropped = summary["dropped_boxes"]
    lines += [
        "",
        f"dropped boxes: {dropped['degenerate']} degenerate, {dropped['missing_coordinates']} without "
        f"coordinates; remapped lesion types: {sum(summary['remapped_lesion_types'].values())}; "
        f"skipped images: {len(summary['skipped_images'])}",
    ]
    return "\n".join(lines)
