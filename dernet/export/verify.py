"""Checks every exported model passes before it replaces an earlier export (timm's export habit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..deploy.detection import Detections

__all__ = ["IOU_MATCH", "SCORE_TOLERANCE", "ExportVerificationError", "check_onnx", "match_detections", "ort_session"]

IOU_MATCH, SCORE_TOLERANCE = 0.99, 1e-3  # a PyTorch box must have an ONNX Runtime twin this close
CORNER_MATCH = 0.5  # px: or every corner this close (a box clipped to zero width at the image's edge has no IoU)


class ExportVerificationError(RuntimeError):
    """The exported graph is invalid or disagrees with PyTorch; nothing was written to the export folder."""

    def __init__(self, message: str) -> None:
        super().__init__(f"export failed verification: {message}")


def check_onnx(path: str | Path) -> None:
    """``onnx.checker`` on the saved file (by path, so graphs over 2 GB work too)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportVerificationError(f"{path}: onnx.checker rejected the graph: {err}") from None


def ort_session(path: str | Path):
    """A CPU ONNX Runtime session for verification (the reference runtime, whatever the gate later uses)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def match_detections(expected: Detections, got: Detections, conf: float, path: str | Path) -> int:
    """Every ``expected`` box scoring at least ``conf`` has a twin in ``got``: same class, IoU >= 0.99 (or corners
    within half a pixel), score within 1e-3. A box within the tolerance of ``conf`` may fall on either side of it:
    not a disagreement. Returns the number of boxes matched; a box without a twin fails the export."""
    for i in np.flatnonzero(expected.scores >= conf + SCORE_TOLERANCE):
        same_class = got.classes == expected.classes[i]
        ious = _iou_one_to_many(expected.boxes[i], got.boxes[same_class])
        corners = np.abs(got.boxes[same_class] - expected.boxes[i]).max(axis=1, initial=0) <= CORNER_MATCH
        close = np.abs(got.scores[same_class] - expected.scores[i]) <= SCORE_TOLERANCE
        if not (close & ((ious >= IOU_MATCH) | corners)).any():
            raise ExportVerificationError(
                f"{path}: the PyTorch box {expected.boxes[i].round(1).tolist()} (class {expected.classes[i]}, score "
                f"{expected.scores[i]:.4f}) has no ONNX Runtime twin (IoU >= {IOU_MATCH}, score within "
                f"{SCORE_TOLERANCE}); not exported"
            )
    return int((expected.scores >= conf + SCORE_TOLERANCE).sum())


def _iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1 y1 x2 y2 box with each of ``boxes`` [N, 4] (a few dozen: numpy is plenty)."""
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum((box[2] - box[0]) * (box[3] - box[1]) + areas - inter, 1e-9)
