"""Ultralytics' DetectionValidator on the CLAHE dataset, so its own mAP50 sees the training preprocessing."""

from __future__ import annotations

from ultralytics.models.yolo.detect import DetectionValidator

from .glue import build_clahe_dataset
from .options import WithOptions

__all__ = ["SpineDetectionValidator"]


class SpineDetectionValidator(WithOptions, DetectionValidator):
    """Pass ``SpineDetectionValidator.with_options(options)`` as ``YOLO(path).val(validator=..., ...)``."""

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        return build_clahe_dataset(
            self.args, img_path, batch, self.data, mode, self.stride, self.options.clahe, rect=True
        )
