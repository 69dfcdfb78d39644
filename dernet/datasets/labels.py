"""Boxes in original pixels to YOLO label lines: clipped to the image, degenerate ones dropped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..deploy.detection import cxcywh_to_xyxy

__all__ = ["Box", "read_row_boxes", "read_yolo_boxes", "yolo_label_lines"]


@dataclass(frozen=True)
class Box:
    """One radiologist's box in original pixel coordinates."""

    class_id: int
    xmin: float
    ymin: float
    xmax: float
    ymax: float


def yolo_label_lines(boxes: Iterable[Box], width: int, height: int, min_size: float = 1.0) -> tuple[list[str], int]:
    """``class cx cy w h`` lines normalized to 0..1, and how many boxes were dropped as degenerate.

    A box is clipped to the image first; one narrower or lower than ``min_size`` original pixels after
    clipping (including a box wholly outside the image) is dropped.
    """
    lines, dropped = [], 0
    for box in boxes:
        x1, x2 = sorted((min(max(box.xmin, 0.0), width), min(max(box.xmax, 0.0), width)))
        y1, y2 = sorted((min(max(box.ymin, 0.0), height), min(max(box.ymax, 0.0), height)))
        if x2 - x1 < min_size or y2 - y1 < min_size:
            dropped += 1
            continue
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        w, h = (x2 - x1) / width, (y2 - y1) / height
        lines.append(f"{box.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines, dropped


def read_yolo_boxes(path: str | Path, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """A prepared label file as boxes [N, 4] x1 y1 x2 y2 in pixels of a ``width`` x ``height`` image, and class ids.

    An empty file (a normal image) gives no boxes.
    """
    text = Path(path).read_text().strip()
    labels = np.array([line.split() for line in text.splitlines()], float).reshape(-1, 5)
    boxes = cxcywh_to_xyxy(labels[:, 1:5]) * np.array([width, height] * 2)
    return boxes, labels[:, 0].astype(int)


def read_row_boxes(data_dir: str | Path, row, size: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The prepared label file of a classification-table row (``labels/<split>/<image_id>.txt``) as boxes in pixels
    of an image of (width, height) ``size``: the original image's by default, where evaluation counts them."""
    width, height = size if size is not None else (row.width, row.height)
    return read_yolo_boxes(Path(data_dir) / "labels" / row.split / f"{row.image_id}.txt", width, height)
