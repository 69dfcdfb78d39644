"""Metrics shared by both packages: classification (AUROC and friends, bootstrap intervals, Youden point) and
detection (AP@0.5 with pycocotools)."""

from .classification import BinaryMetrics, binary_metrics, bootstrap_intervals, youden_threshold
from .detection import DetectionSample, average_precision_50

__all__ = [
    "BinaryMetrics",
    "DetectionSample",
    "average_precision_50",
    "binary_metrics",
    "bootstrap_intervals",
    "youden_threshold",
]
