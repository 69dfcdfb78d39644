"""Ultralytics' DetectionTrainer with the CLAHE dataset and, optionally, the focal classification loss."""

from __future__ import annotations

import json

from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils import colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .dataset import ClaheYOLODataset
from .focal import install_focal_loss
from .options import SpineOptions

__all__ = ["SpineDetectionTrainer"]


class SpineDetectionTrainer(DetectionTrainer):
    """Pass as ``YOLO(...).train(trainer=SpineDetectionTrainer, ...)``; options come from `SpineOptions`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.spine = SpineOptions.from_env()
        self.save_dir.mkdir(parents=True, exist_ok=True)
        (self.save_dir / "spine_options.json").write_text(json.dumps(vars(self.spine), indent=2) + "\n")

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
            clahe=self.spine.clahe,
        )

    def set_class_weights(self) -> None:
        """Class weights first (cls_pw), then the focal criterion, which reads them, before the EMA copy."""
        super().set_class_weights()
        if self.spine.focal:
            install_focal_loss(unwrap_model(self.model), self.spine.focal_gamma, self.spine.focal_alpha)
