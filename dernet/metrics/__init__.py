"""Metrics shared by both packages: classification (AUROC and friends, bootstrap intervals, Youden point)."""

from .classification import BinaryMetrics, binary_metrics, bootstrap_intervals, youden_threshold

__all__ = ["BinaryMetrics", "binary_metrics", "bootstrap_intervals", "youden_threshold"]
