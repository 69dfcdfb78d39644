"""A torchvision detector as a LightningModule: the papers' SGD recipe (momentum, a step schedule in iterations after
a linear warm-up), multi-scale training, and validation mAP@0.5 (torchmetrics) choosing best.ckpt."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from torchmetrics.detection import MeanAveragePrecision

from ..config import check_choice
from ..datasets.preprocessing import resolve_clahe
from ..imaging import ClaheParams
from ..training.optim import OPTIMIZERS, build_optimizer, build_schedule
from .models import build_detector

__all__ = ["LesionDetector"]


class LesionDetector(pl.LightningModule):
    """A Faster R-CNN or RetinaNet for the 7 lesion classes (arguments are LightningCLI's `model:` keys).

    Args:
        arch: faster_rcnn | faster_rcnn_v2 | retinanet | retinanet_v2 (torchvision's R50-FPN models).
        backbone: resnet50 (the papers'); resnet18 / resnet34 (the MRI paper's RetinaNet, the demo's lighter models).
        imgsz: square canvas in pixels (the gate's letterbox); evaluation and export run at it. Linked to the data.
        train_sizes: sizes drawn per image in training (multi-scale), at most imgsz; empty: imgsz only.
        pretrained: coco (the whole detector) | imagenet (the backbone) | null; see models.py for the network rule.
        pretrained_path: a local weights file to start from instead (a state dict or a checkpoint of this model).
        trainable_backbone_layers: ResNet stages trained (0..5); torchvision's default is 3.
        anchor_sizes: anchor size per FPN level, 5 in all (null: torchvision's 32..512 px).
        fpn_channels: the feature pyramid's width (torchvision's 256; narrower for resnet18/34 only).
        optimizer: sgd (the papers') | adamw (faster from random weights: the CPU demo's).
        lr: learning rate at batch 16 (the papers'); scaled linearly to the data's batch size.
        momentum: SGD momentum (adamw: unused).
        weight_decay: weight decay.
        warmup_steps: linear warm-up from lr/1000, in optimizer steps.
        milestones: optimizer steps at which the learning rate is multiplied by gamma.
        gamma: the learning-rate factor at each milestone.
        batch_size: images per step, for the learning-rate scaling (the data module supplies it).
        rpn_post_nms_top_n_train: Faster R-CNN's proposals kept per image in training (torchvision: 2000).
        box_batch_size_per_image: Faster R-CNN's sampled RoIs per image in training (torchvision: 512).
    """

    def __init__(
        self,
        arch: str = "faster_rcnn",
        backbone: str = "resnet50",
        imgsz: int = 640,
        train_sizes: list[int] | None = None,
        pretrained: str | None = "coco",
        pretrained_path: str | None = None,
        trainable_backbone_layers: int = 3,
        anchor_sizes: list[int] | None = None,
        fpn_channels: int = 256,
        optimizer: str = "sgd",
        lr: float = 0.02,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        warmup_steps: int = 500,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        batch_size: int = 16,
        rpn_post_nms_top_n_train: int | None = None,
        box_batch_size_per_image: int | None = None,
    ) -> None:
        super().__init__()
        check_choice("optimizer", optimizer, OPTIMIZERS)
        self.save_hyperparameters()
        heads = {"rpn_post_nms_top_n_train": rpn_post_nms_top_n_train,
                 "box_batch_size_per_image": box_batch_size_per_image}  # fmt: skip
        heads = {k: v for k, v in heads.items() if v is not None and arch.startswith("faster_rcnn")}
        anchors = tuple(anchor_sizes) if anchor_sizes else None
        self.model = build_detector(arch, backbone, imgsz, tuple(train_sizes or ()), pretrained, pretrained_path,
                                    trainable_backbone_layers, anchors, fpn_channels, **heads)  # fmt: skip
        self.val_map = MeanAveragePrecision(
            iou_type="bbox", iou_thresholds=[0.5], max_detection_thresholds=[1, 10, 300], backend="pycocotools"
        )
        self.val_map.warn_on_many_detections = False  # 300 per image, as evaluation counts them
        self.trained_clahe: ClaheParams | None = None  # read from a checkpoint's data settings (on_load_checkpoint)

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """Detections per canvas: boxes x1 y1 x2 y2 in canvas pixels, labels (class id + 1), scores >= 0.001."""
        return self.model(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(images))
        self.log_dict({f"train_{k}": v for k, v in losses.items()}, on_epoch=True, batch_size=len(images))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        self.val_map.update(self.model(images), targets)

    def on_validation_epoch_end(self) -> None:
        """val_map50 (torchmetrics over every val image, gathered across DDP ranks) picks best.ckpt."""
        self.log("val_map50", self.val_map.compute()["map_50"], prog_bar=True)
        self.val_map.reset()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Keep the CLAHE the data module trained with (Lightning saves its resolved hyperparameters beside ours)."""
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        if data.get("clahe_clip_limit") is not None and data.get("clahe_tile_grid") is not None:
            self.trained_clahe = ClaheParams(float(data["clahe_clip_limit"]), int(data["clahe_tile_grid"]))

    def clahe_for(self, data_dir: str | Path) -> ClaheParams:
        """The CLAHE this detector was trained with, or (a checkpoint without data settings) the prepared data's."""
        return self.trained_clahe or resolve_clahe(data_dir, None, None)

    def configure_optimizers(self):
        h = self.hparams
        lr = h.lr * h.batch_size / 16  # the linear scaling rule, from the papers' batch of 16
        optimizer = build_optimizer(self.parameters(), h.optimizer, lr, h.weight_decay, h.momentum)
        schedule = build_schedule(optimizer, "step", warmup_steps=h.warmup_steps, milestones=h.milestones,
                                  gamma=h.gamma)  # fmt: skip
        return {"optimizer": optimizer, "lr_scheduler": schedule}
