"""`synth`: a phantom dataset in the exact VinDr-SpineXR release layout, deterministic for a seed."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..fileio import write_json_atomic, write_text_atomic
from .phantom import PhantomSpec, render_phantom, sample_spec
from .phantom_dicom import RELEASE_LIKE, Encoding, encoding_for, make_uid, write_phantom_dicom
from .vindr import CLASS_NAMES, CSV_COLUMNS, NO_FINDING

__all__ = ["PhantomImage", "phantom_plan", "synthesize"]

BOX_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
# Lesion classes on an abnormal image, fewest and most: the release averages about 3.7 boxes per abnormal image
# (VinDr-SpineXR's Table 2), and fewer make the image-level signal too faint to learn from random weights.
LESIONS_PER_ABNORMAL = (2, 4)


@dataclass(frozen=True)
class PhantomImage:
    """One planned image: where it goes in the release layout and how to draw and encode it."""

    index: int
    split: str  # "train" or "test"
    study_id: str
    series_id: str
    image_id: str
    rad_id: str
    spec: PhantomSpec
    encoding: Encoding


def phantom_plan(
    images: int, seed: int, long_side: int = 640, release_like: bool = False, views: int | None = None
) -> list[PhantomImage]:
    """The images of a phantom, without drawing them: studies of one or two images (or exactly ``views`` each),
    ~20% of studies in test, about half the images normal, abnormal ones with two to four lesions of balanced
    classes. With ``views``, about half the studies are abnormal, and an abnormal study's lesion types show in one
    of its views or in all of them (even odds), so study-level rules can be checked against a known truth."""
    rng = np.random.default_rng(seed)
    plan: list[PhantomImage] = []
    study = 0
    while len(plan) < images:
        per_study = min(images - len(plan), views or (2 if rng.uniform() < 0.3 else 1))
        split = "test" if study % 5 == 4 else "train"  # every fifth study: a stable ~20% test split
        study_id = make_uid(seed, "study", study)
        lesions = _study_lesions(rng, per_study) if views else None
        for view in range(per_study):
            index = len(plan)
            if lesions is not None:
                classes = lesions[view]
            elif rng.uniform() < 0.5:
                classes = []
            else:
                classes = list(rng.choice(7, size=_lesion_count(rng), replace=False))
            spec = sample_spec(int(rng.integers(2**31)), long_side, [int(c) for c in classes])
            plan.append(
                PhantomImage(
                    index=index,
                    split=split,
                    study_id=study_id,
                    series_id=make_uid(seed, "series", study, index),
                    image_id=make_uid(seed, "image", index),
                    rad_id=f"R{1 + index % 3}",
                    spec=spec,
                    encoding=RELEASE_LIKE if release_like else encoding_for(index),
                )
            )
        study += 1
    if not any(p.split == "test" for p in plan) and len({p.study_id for p in plan}) > 1:
        last = plan[-1].study_id  # a release always has a test split
        plan = [replace(p, split="test") if p.study_id == last else p for p in plan]
    return plan


def _lesion_count(rng: np.random.Generator) -> int:
    low, high = LESIONS_PER_ABNORMAL
    return int(rng.integers(low, high + 1))


def _study_lesions(rng: np.random.Generator, views: int) -> list[list[int]]:
    """Each view's lesion classes for one study: none (a normal study, even odds), or two to four classes shown
    in every view or in one view only (even odds)."""
    if rng.uniform() < 0.5:
        return [[] for _ in range(views)]
    classes = [int(c) for c in rng.choice(7, size=_lesion_count(rng), replace=False)]
    if views > 1 and rng.uniform() < 0.5:
        shown = int(rng.integers(views))
        return [classes if v == shown else [] for v in range(views)]
    return [list(classes) for _ in range(views)]


def synthesize(
    out_dir: Path,
    images: int = 40,
    seed: int = 0,
    long_side: int = 640,
    release_like: bool = False,
    progress: bool = True,
    views: int | None = None,
) -> dict:
    """Draw, encode and write the phantom (``views`` images per study when given); returns the summary also
    written to ``summary.json``."""
    out_dir = Path(out_dir)
    plan = phantom_plan(images, seed, long_side, release_like, views)
    rows: dict[str, list[list]] = {"train": [], "test": []}
    box_sizes: list[float] = []
    for item in tqdm(plan, desc="synth", unit="img", disable=not progress, file=sys.stderr):
        image, boxes = render_phantom(item.spec)
        path = out_dir / f"{item.split}_images" / f"{item.image_id}.dicom"
        write_phantom_dicom(
            path,
            image,
            item.encoding,
            _uids(item),
            f"{item.index:05d}",
            np.random.default_rng([seed, item.index]),
        )
        ids = [item.study_id, item.series_id, item.image_id, item.rad_id]
        if not boxes:
            rows[item.split].append(ids + [NO_FINDING, "", "", "", ""])
        for class_id, (x1, y1, x2, y2) in boxes:
            rows[item.split].append(ids + [CLASS_NAMES[class_id], x1, y1, x2, y2])
            box_sizes.append(max(x2 - x1, y2 - y1) / max(item.spec.width, item.spec.height))
    for split, split_rows in rows.items():
        write_text_atomic(out_dir / "annotations" / f"{split}.csv", _csv_text(split_rows))
    summary = _summary(plan, rows, box_sizes, seed, long_side)
    summary["views_per_study"] = views  # null: one or two, as the release mostly has
    write_json_atomic(out_dir / "summary.json", summary)
    return summary


def _uids(item: PhantomImage) -> dict[str, str]:
    return {"study_id": item.study_id, "series_id": item.series_id, "image_id": item.image_id}


def _csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _summary(
    plan: list[PhantomImage], rows: dict[str, list[list]], box_sizes: list[float], seed: int, long_side: int
) -> dict:
    splits = {}
    for split, split_rows in rows.items():
        images = [p for p in plan if p.split == split]
        abnormal = {r[2] for r in split_rows if r[4] != NO_FINDING}
        abnormal_studies = {p.study_id for p in images if p.image_id in abnormal}
        splits[split] = {
            "images": len(images),
            "studies": len({p.study_id for p in images}),
            "abnormal_studies": len(abnormal_studies),
            "abnormal": len(abnormal),
            "normal": len(images) - len(abnormal),
            "boxes": {name: sum(1 for r in split_rows if r[4] == name) for name in CLASS_NAMES},
        }
    quantiles = np.quantile(box_sizes, BOX_QUANTILES).round(4).tolist() if box_sizes else []
    return {
        "seed": seed,
        "long_side": long_side,
        "splits": splits,
        "box_long_side_fraction_quantiles": dict(zip([str(q) for q in BOX_QUANTILES], quantiles, strict=False)),
        "encodings": _encoding_counts(plan),
    }


def _encoding_counts(plan: list[PhantomImage]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for item in plan:
        for key, value in vars(item.encoding).items():
            counts.setdefault(key, {})
            counts[key][str(value)] = counts[key].get(str(value), 0) + 1
    return counts
