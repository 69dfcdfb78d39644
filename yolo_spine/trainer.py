"""Ultralytics' DetectionTrainer with the CLAHE dataset and, optionally, the focal classification loss."""

from __future__ import annotations

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import unwrap_model

from .focal import install_focal_loss
from .glue import build_clahe_dataset
from .options import WithOptions

__all__ = ["SpineDetectionTrainer"]


class SpineDetectionTrainer(WithOptions, DetectionTrainer):
    """Pass ``SpineDetectionTrainer.with_options(options)`` as ``YOLO(...).train(trainer=..., ...)``; the run folder
    records the options in ``spine_options.json`` (evaluation and export read them back from there)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.options.save(self.save_dir)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        stride = max(int(unwrap_model(self.model).stride.max()), 32) if self.model else 32
        return build_clahe_dataset(
            self.args, img_path, batch, self.data, mode, stride, self.options.clahe, rect=mode == "val"
        )

    def set_class_weights(self) -> None:
        """Class weights first (cls_pw), then the focal criterion, which reads them, before the EMA copy."""
        super().set_class_weights()
        if self.options.focal:
            install_focal_loss(unwrap_model(self.model), self.options.focal_gamma, self.options.focal_alpha)
