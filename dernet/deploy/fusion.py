"""Weighted Boxes Fusion (the ``ensemble-boxes`` package) of several detectors' boxes on one image.

WBF averages the coordinates of boxes that overlap across models, weighted by score and model weight, instead of
keeping one winner as NMS does; VinDr-SpineXR's best detection entries fused their models this way. The package (and
numba, which it compiles with) is the `fusion` extra, imported when fusion is asked for, never by plain screening.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .detection import Detections

__all__ = ["fuse_detections"]


def fuse_detections(
    per_model: Sequence[Detections],
    image_size: tuple[int, int],
    weights: Sequence[float],
    iou_thr: float,
    skip_box_thr: float = 0.001,
) -> Detections:
    """One image's boxes from each model (x1 y1 x2 y2 in pixels of an image of (width, height) ``image_size``)
    fused into one set, best first; scores are WBF's weighted average (``conf_type="avg"``), at most 1."""
    from ensemble_boxes import weighted_boxes_fusion

    if len(per_model) != len(weights):
        raise ValueError(f"{len(per_model)} models' boxes but {len(weights)} weights")
    scale = np.array(image_size * 2, dtype=np.float64)
    kept = [_with_area(d, scale) for d in per_model]
    if not any(len(d) for d in kept):
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    fused, scores, labels = weighted_boxes_fusion(
        [d.boxes.tolist() for d in kept],
        [d.scores.tolist() for d in kept],
        [d.classes.tolist() for d in kept],
        weights=list(weights),
        iou_thr=iou_thr,
        skip_box_thr=skip_box_thr,
    )
    order = np.argsort(-scores, kind="stable")
    return Detections(
        (fused[order] * scale).astype(np.float32), scores[order].astype(np.float32), labels[order].astype(np.int64)
    )


def _with_area(found: Detections, scale: np.ndarray) -> Detections:
    """Boxes normalized to 0..1 (as WBF takes them), without those clipped to no area at the image's edge (WBF
    would skip each with a warning: they cannot overlap anything)."""
    boxes = np.clip(found.boxes / scale, 0.0, 1.0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return Detections(boxes[area > 0], found.scores[area > 0], found.classes[area > 0])
