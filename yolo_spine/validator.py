"""Ultralytics' DetectionValidator on the CLAHE dataset, so its own mAP50 sees the training preprocessing."""

from __future__ import annotations

from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import colorstr

from .dataset import ClaheYOLODataset
from .options import WithOptions

__all__ = ["SpineDetectionValidator"]


class SpineDetectionValidator(WithOptions, DetectionValidator):
    """Pass ``SpineDetectionValidator.with_options(options)`` as ``YOLO(path).val(validator=..., ...)``."""

    def build_dataset(self, img_path: str, mode: str = "val", batch: int | None = None):
        return ClaheYOLODataset(
            img_path=img_path,
            imgsz=self.args.imgsz,
            batch_size=batch,
            augment=False,
            hyp=self.args,
            rect=True,
            cache=None,
            single_cls=self.args.single_cls or False,
            stride=self.stride,
            pad=0.5,
            prefix=colorstr(f"{mode}: "),
            task=self.args.task,
            classes=self.args.classes,
            data=self.data,
            fraction=1.0,
            clahe=self.options.clahe,
        )
