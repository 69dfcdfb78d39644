"""Ultralytics' DetectionTrainer with the CLAHE dataset and, optionally, the focal classification loss."""

from __future__ import annotations

from dataclasses import asdict

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import colorstr
from ultralytics.utils.torch_utils import unwrap_model

from dernet.fileio import write_json_atomic

from .dataset import ClaheYOLODataset
from .focal import install_focal_loss
from .options import OPTIONS_FILE, WithOptions

__all__ = ["SpineDetectionTrainer"]


class SpineDetectionTrainer(WithOptions, DetectionTrainer):
    """Pass ``SpineDetectionTrainer.with_options(options)`` as ``YOLO(...).train(trainer=..., ...)``; the run folder
    records the options in ``spine_options.json`` (evaluation and export read them back from there)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        write_json_atomic(self.save_dir / OPTIONS_FILE, asdict(self.options))

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        """Ultralytics' build_yolo_dataset with our dataset class (that function takes no class argument)."""
        args = self.args
        return ClaheYOLODataset(
            img_path=img_path,
            imgsz=args.imgsz,
            batch_size=batch,
            augment=mode == "train",
            hyp=args,
            rect=args.rect or mode == "val",
            cache=args.cache or None,
            single_cls=args.single_cls or False,
            stride=max(int(unwrap_model(self.model).stride.max()), 32) if self.model else 32,
            pad=0.0 if mode == "train" else 0.5,
            prefix=colorstr(f"{mode}: "),
            task=args.task,
            classes=args.classes,
            data=self.data,
            fraction=args.fraction if mode == "train" else 1.0,
            clahe=self.options.clahe,
        )

    def set_class_weights(self) -> None:
        """Class weights first (cls_pw), then the focal criterion, which reads them, before the EMA copy."""
        super().set_class_weights()
        if self.options.focal:
            install_focal_loss(unwrap_model(self.model), self.options.focal_gamma, self.options.focal_alpha)
