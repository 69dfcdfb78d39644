"""Folder-per-class datasets (``root/<class name>/<images>``, Ghauri et al.'s layout): read, split, prepare, and a
phantom of that layout for the demo and the tests.

Prepared into the same layout as the VinDr-SpineXR release (a windowed PNG cache, ``classification.csv`` with a
``label`` column, ``summary.json`` naming the classes), through the same ``dernet.imaging`` path, so the same data
module and export read it.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from ..config import ConfigError
from ..errors import MissingFileError, UsageError
from ..fileio import write_bytes_atomic, write_json_atomic
from ..imaging import ClaheParams
from .cache import ImageJob
from .phantom import render_phantom, sample_spec
from .prepare import PrepareConfig, PrepareResult, cache_images, reset_if_parameters_changed, save_preprocessing
from .splits import assign_folds
from .vindr import CLASS_NAMES

__all__ = [
    "GHAURI_CLASSES",
    "LAYOUT",
    "phantom_lesions",
    "prepare_imagefolder",
    "read_imagefolder",
    "split_imagefolder",
    "synthesize_imagefolder",
]

LAYOUT = "imagefolder"
GHAURI_CLASSES = ("foraminal stenosis", "osteophyte", "surgical implant", "normal")
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}  # Ghauri et al.: a random 80/10/10 split
SPLIT_FILE = "split.csv"  # optional, at the dataset root: columns path (relative to the root) and split


def read_imagefolder(root: str | Path, classes: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Rows (``source`` path relative to ``root``, ``label``) for every file under ``root/<class>/``, and the classes
    (``classes`` in that order when given, else the folder names sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: no such folder; give a folder with one subfolder of images per class")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if classes is None:
        classes = folders
    missing = [c for c in classes if c not in folders]
    if missing or len(classes) < 2:
        raise UsageError(
            f"{root}: needs a subfolder per class (at least two); found {folders or 'none'}"
            + (f", not {missing}" if missing else "")
        )
    rows = [
        {"source": str(path.relative_to(root)), "label": name}
        for name in classes
        for path in sorted((root / name).rglob("*"))
        if path.is_file() and not path.name.startswith(".")
    ]
    empty = [c for c in classes if not any(r["label"] == c for r in rows)]
    if empty:
        raise UsageError(f"{root}: no images in the class folder(s) {', '.join(empty)}")
    return pd.DataFrame(rows), list(classes)


def split_imagefolder(rows: pd.DataFrame, root: Path, seed: int) -> pd.Series:
    """train/val/test per row: ``root/split.csv`` when the user has one, else seeded and stratified 80/10/10."""
    split_csv = root / SPLIT_FILE
    if split_csv.is_file():
        given = pd.read_csv(split_csv, dtype=str)
        if not {"path", "split"} <= set(given.columns) or not set(given.split) <= set(SPLIT_FRACTIONS):
            raise UsageError(f"{split_csv}: needs columns path and split, split one of train, val, test")
        by_path = dict(zip(given.path, given.split, strict=True))
        unlisted = [s for s in rows.source if s not in by_path]
        if unlisted:
            raise UsageError(f"{split_csv}: {len(unlisted)} images are not listed, e.g. {unlisted[0]}; list every one")
        return rows.source.map(by_path)
    counts = rows.label.value_counts()
    if counts.min() < 3:
        raise UsageError(
            f"{root}: class '{counts.idxmin()}' has {counts.min()} images; a stratified train/val/test split needs "
            f"at least 3 per class (or give {SPLIT_FILE})"
        )
    index = np.arange(len(rows))
    held = SPLIT_FRACTIONS["val"] + SPLIT_FRACTIONS["test"]
    train, rest = train_test_split(index, test_size=held, stratify=rows.label, random_state=seed)
    val, test = train_test_split(
        rest, test_size=SPLIT_FRACTIONS["test"] / held, stratify=rows.label.iloc[rest], random_state=seed
    )
    split = np.empty(len(rows), dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    return pd.Series(split, index=rows.index)


def prepare_imagefolder(
    source: Path,
    out_dir: Path,
    config: PrepareConfig,
    progress: bool = True,
    clahe: ClaheParams | None = None,
    classes: list[str] | None = None,
) -> PrepareResult:
    """Prepare a folder-per-class dataset into ``out_dir``: cache, ``classification.csv`` (``label``, and
    ``config.folds`` class-stratified folds over train + val for cross-validation), summary."""
    source, out_dir = Path(source), Path(out_dir).resolve()
    rows, classes = read_imagefolder(source, classes)
    rows["split"] = split_imagefolder(rows, source, config.seed)
    rows["image_id"] = _image_ids(rows)
    reset_if_parameters_changed(out_dir, config)
    jobs = [
        ImageJob(r.image_id, source / r.source, r.split, (), out_dir, config.long_side, config.min_box_px)
        for r in rows.itertuples()
    ]
    development = (rows.split != "test").to_numpy()  # train + val: what cross-validation re-draws (never test)
    folds = np.full(len(rows), -1)
    folds[development] = assign_folds(
        list(rows.image_id[development]), list(rows.label[development]), config.folds, config.seed
    )
    table = pd.DataFrame(
        {
            "image_id": rows.image_id,
            "study_id": rows.image_id,  # no studies in this layout: each image is its own
            "split": rows.split,
            "fold": folds,  # stratified by class over train + val, for `python -m dernet cv`
            "abnormal": [int(label.lower() != "normal") for label in rows.label],
            "lesion_types": "",
            "label": rows.label,
            "source": rows.source,
            "path": [f"images/{s}/{i}.png" for s, i in zip(rows.split, rows.image_id, strict=True)],
        }
    )
    kept, _, skipped = cache_images(table, jobs, out_dir, config, progress)
    summary = _summary(kept, classes, skipped, config, source)
    write_json_atomic(out_dir / "summary.json", summary)
    save_preprocessing(out_dir, config, clahe)
    return PrepareResult(out_dir=out_dir, summary=summary, skipped=skipped)


def _image_ids(rows: pd.DataFrame) -> list[str]:
    """File-system-safe unique ids from the class and file names (``osteophyte_0003``)."""
    seen: Counter = Counter()
    ids = []
    for source, label in zip(rows.source, rows.label, strict=True):
        base = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{label}_{Path(source).stem}").strip("-")
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return ids


def _summary(table: pd.DataFrame, classes: list[str], skipped: list, config: PrepareConfig, source: Path) -> dict:
    splits: dict[str, Any] = {}
    for split in SPLIT_FRACTIONS:
        rows = table[table.split == split]
        splits[split] = {
            "images": int(len(rows)),
            "per_class": {name: int((rows.label == name).sum()) for name in classes},
        }
    return {
        "layout": LAYOUT,
        "classes": classes,
        "splits": splits,
        "split_source": SPLIT_FILE if (source / SPLIT_FILE).is_file() else f"stratified 80/10/10, seed {config.seed}",
        "skipped_images": [{"image_id": r.image_id, "split": r.split, "reason": r.error} for r in skipped],
        "params": {k: v for k, v in vars(config).items() if k != "workers"},
        "source": str(source),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def format_imagefolder_summary(summary: dict[str, Any]) -> str:
    """A Markdown table of images per class and split."""
    splits = summary["splits"]
    lines = ["| class | " + " | ".join(splits) + " |", "|" + "---|" * (1 + len(splits))]
    for name in summary["classes"]:
        lines.append(f"| {name} | " + " | ".join(str(s["per_class"][name]) for s in splits.values()) + " |")
    lines.append("| all | " + " | ".join(str(s["images"]) for s in splits.values()) + " |")
    lines += ["", f"split: {summary['split_source']}; skipped images: {len(summary['skipped_images'])}"]
    return "\n".join(lines)


# --- the phantom ----------------------------------------------------------------------------------------------------


def phantom_lesions(name: str) -> list[int]:
    """The phantom lesion classes drawn for a class name: none for 'normal', the VinDr-SpineXR class of that name
    (osteophyte, surgical implant, foraminal stenosis, ... singular or plural), else one picked by the name."""
    key = name.strip().lower()
    if key == "normal":
        return []
    for class_id, vindr in enumerate(CLASS_NAMES):
        if vindr.lower().rstrip("s") == key.rstrip("s"):
            return [class_id]
    return [sum(key.encode()) % (len(CLASS_NAMES) - 1)]  # 'Other lesions' draws nothing a classifier could learn


def synthesize_imagefolder(
    out_dir: Path,
    classes: list[str],
    images_per_class: int = 40,
    seed: int = 0,
    long_side: int = 300,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``out_dir/<class>/<nnnn>.png`` (every fifth one a JPEG): phantom radiographs with two or three lesions
    of the class's type (none for 'normal'). Deterministic for a seed; returns images per class."""
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError(f"--classes needs at least two different names, got {classes}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    jobs = [(name, i, int(rng.integers(2**31))) for name in classes for i in range(images_per_class)]
    for name, i, image_seed in tqdm(jobs, desc="synth", unit="img", disable=not progress, file=sys.stderr):
        lesion = phantom_lesions(name)
        count = int(np.random.default_rng(image_seed).integers(2, 4))
        image, _ = render_phantom(sample_spec(image_seed, long_side, lesion * count))
        pixels = np.round(image * 255).astype(np.uint8)
        suffix = ".jpg" if i % 5 == 4 else ".png"
        ok, encoded = cv2.imencode(suffix, pixels)
        if not ok:
            raise OSError(f"{out_dir / name}: {suffix} encoding failed")
        write_bytes_atomic(out_dir / name / f"{i:04d}{suffix}", encoded.tobytes())
    return {name: images_per_class for name in classes}
