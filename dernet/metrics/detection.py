"""Detection AP@0.5 the VinDr-SpineXR way: COCO 101-point interpolated precision (pycocotools' COCOeval with
the IoU threshold set to 0.5), every image of the split included, boxes in original pixel coordinates.

Shared by the detector's evaluation and the gate's, so both report the same numbers.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

__all__ = ["DetectionSample", "average_precision_50"]


@dataclass
class DetectionSample:
    """One image: its ground truth and predictions, [x1, y1, x2, y2] in original pixels."""

    image_id: str
    width: int
    height: int
    gt_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    gt_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def average_precision_50(samples: Sequence[DetectionSample], class_names: Sequence[str], max_dets: int = 300) -> dict:
    """Per-class AP@0.5, mAP@0.5 (mean over classes that have ground truth) and the PR curves.

    Returns {"ap50": {name: AP or None when the class has no ground truth}, "map50": float,
    "recall": [101 points], "precision": {name: [101 points] or None}}.
    """
    coco_gt = COCO()
    coco_gt.dataset = _ground_truth(samples, class_names)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt.createIndex()
        detections = _detections(samples)
        coco_dt = coco_gt.loadRes(detections) if detections else None
        if coco_dt is not None:
            evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
            evaluator.params.iouThrs = np.array([0.5])
            evaluator.params.maxDets = [max_dets]
            evaluator.evaluate()
            evaluator.accumulate()
    recall = np.linspace(0.0, 1.0, 101)
    has_gt = {int(c) for s in samples for c in s.gt_classes}
    ap, curves = {}, {}
    for k, name in enumerate(class_names):
        if k not in has_gt:
            ap[name], curves[name] = None, None
            continue
        if coco_dt is None:
            ap[name], curves[name] = 0.0, [0.0] * len(recall)
            continue
        precision = evaluator.eval["precision"][0, :, k, 0, -1]  # [IoU, recall, class, area=all, maxDets]
        precision = np.where(precision < 0, 0.0, precision)
        ap[name], curves[name] = float(precision.mean()), precision.tolist()
    scored = [v for v in ap.values() if v is not None]
    return {
        "ap50": ap,
        "map50": float(np.mean(scored)) if scored else float("nan"),
        "recall": recall.tolist(),
        "precision": curves,
    }


def _ground_truth(samples: Sequence[DetectionSample], class_names: Sequence[str]) -> dict:
    images, annotations = [], []
    for index, sample in enumerate(samples):
        images.append({"id": index, "width": int(sample.width), "height": int(sample.height)})
        for box, cls in zip(np.asarray(sample.gt_boxes).reshape(-1, 4), sample.gt_classes, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index,
                    "category_id": int(cls),
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k, "name": name} for k, name in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _detections(samples: Sequence[DetectionSample]) -> list[dict]:
    detections = []
    for index, sample in enumerate(samples):
        boxes = np.asarray(sample.boxes, dtype=float).reshape(-1, 4)
        for box, score, cls in zip(boxes, sample.scores, sample.classes, strict=True):
            detections.append(
                {
                    "image_id": index,
                    "category_id": int(cls),
                    "score": float(score),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                }
            )
    return detections
