"""The detector's raw ONNX output to boxes.

YOLO's graphs end before NMS (:func:`decode_detections`: confidence filter, then class-aware NMS with OpenCV);
torchvision's end after their own post-processing (:func:`decode_torchvision`: confidence filter only).

For YOLO, NMS runs here, not in the graph: Ultralytics' embedded NMS bakes one confidence threshold into the file, and
evaluation needs 0.001 while screening wants 0.25. One best class per anchor and class-aware NMS is what
Ultralytics' own ``non_max_suppression`` does by default (multi_label=False, agnostic=False).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["TORCHVISION_LAYOUT", "YOLO_KIND", "Detections", "cxcywh_to_xyxy", "decode_detections", "decode_torchvision"]

YOLO_KIND = "yolo"  # the manifest's detector kind for Ultralytics graphs; torchvision's carry their arch
TORCHVISION_LAYOUT = "boxes [K, 4] x1 y1 x2 y2 in input pixels, labels [K] (class id + 1), scores [K] >= 0.001"


@dataclass(frozen=True)
class Detections:
    """Boxes [K, 4] x1 y1 x2 y2 (in the detector input's pixels), scores [K], class ids [K]; best first."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def keep(self, mask: np.ndarray) -> Detections:
        return Detections(self.boxes[mask], self.scores[mask], self.classes[mask])


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """Boxes [N, 4] as centre x, centre y, width, height (YOLO's layout) to corners x1 y1 x2 y2."""
    cx, cy, w, h = np.asarray(boxes).T
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def decode_detections(raw: np.ndarray, conf: float, iou: float, max_det: int = 300) -> Detections:
    """``raw`` [4 + classes, anchors] (or with a leading batch of 1): cx, cy, w, h, then per-class scores."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim == 3:
        raw = raw[0]
    class_scores = raw[4:]
    classes = class_scores.argmax(axis=0)
    scores = class_scores[classes, np.arange(raw.shape[1])]
    candidates = np.flatnonzero(scores >= conf)
    if candidates.size == 0:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    corners = cxcywh_to_xyxy(raw[:4, candidates].T)
    rects = np.column_stack([corners[:, :2], raw[2:4, candidates].T]).astype(np.float64)  # OpenCV's x, y, w, h
    kept = cv2.dnn.NMSBoxesBatched(
        rects.tolist(), scores[candidates].tolist(), classes[candidates].tolist(), conf, iou, top_k=max_det
    )
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)
    kept = kept[np.argsort(-scores[candidates[kept]], kind="stable")][:max_det]
    keep = candidates[kept]
    return Detections(corners[kept].astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.int64))


def decode_torchvision(outputs: list[np.ndarray], conf: float, max_det: int = 300) -> Detections:
    """A torchvision graph's (boxes, labels, scores), already through its NMS: the boxes scoring >= ``conf``, best
    first, labels back to class ids (label 0, torchvision's background, is never a lesion)."""
    boxes, labels, scores = (np.asarray(a) for a in outputs[:3])
    keep = (scores >= conf) & (labels > 0)
    order = np.argsort(-scores[keep], kind="stable")[:max_det]
    return Detections(
        boxes[keep][order].reshape(-1, 4).astype(np.float32),
        scores[keep][order].astype(np.float32),
        labels[keep][order].astype(np.int64) - 1,
    )
