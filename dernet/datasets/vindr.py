"""The VinDr-SpineXR release: class names, the annotation CSVs, and one record per image."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..classes import CLASS_NAMES, OTHER_CLASS, PAPER_ORDER
from ..errors import UsageError
from .labels import Box

__all__ = [
    "CLASS_NAMES",
    "CSV_COLUMNS",
    "NO_FINDING",
    "PAPER_ORDER",
    "AnnotatedImage",
    "Box",
    "read_annotations",
]

NO_FINDING = "No finding"
CSV_COLUMNS = ("study_id", "series_id", "image_id", "rad_id", "lesion_type", "xmin", "ymin", "xmax", "ymax")


@dataclass
class AnnotatedImage:
    """Everything the CSV says about one image."""

    image_id: str
    study_id: str
    series_id: str
    split: str  # the release's split: "train" or "test"
    boxes: list[Box] = field(default_factory=list)
    lesion_types: set[str] = field(default_factory=set)  # class names after remapping
    missing_coordinates: int = 0  # lesion rows without usable coordinates: the image is abnormal, no box

    @property
    def abnormal(self) -> bool:
        return bool(self.lesion_types)


def read_annotations(csv_path: Path, split: str, remapped: Counter) -> dict[str, AnnotatedImage]:
    """Group a release CSV by image. Unknown lesion types become 'Other lesions', counted in ``remapped``."""
    table = pd.read_csv(csv_path, dtype={"study_id": str, "series_id": str, "image_id": str, "lesion_type": str})
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(f"{csv_path}: missing columns {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
    images: dict[str, AnnotatedImage] = {}
    for row in table.itertuples(index=False):
        image = images.get(row.image_id)
        if image is None:
            image = images[row.image_id] = AnnotatedImage(row.image_id, row.study_id, row.series_id, split)
        lesion = str(row.lesion_type).strip() if isinstance(row.lesion_type, str) else NO_FINDING
        if lesion == NO_FINDING:
            continue
        if lesion in CLASS_NAMES:
            class_id = CLASS_NAMES.index(lesion)
        else:
            class_id = OTHER_CLASS
            remapped[lesion] += 1
        image.lesion_types.add(CLASS_NAMES[class_id])
        coords = (row.xmin, row.ymin, row.xmax, row.ymax)
        if all(isinstance(v, (int, float)) and math.isfinite(v) for v in coords):
            image.boxes.append(Box(class_id, *(float(v) for v in coords)))
        else:
            image.missing_coordinates += 1
    return images
