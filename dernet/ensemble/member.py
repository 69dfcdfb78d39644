"""One ensemble member: a timm backbone as a LightningModule for one task (tasks.py): binary (normal vs abnormal),
multilabel (the seven lesion types) or multiclass (one class per image).

The module takes [B, 1, H, W] images in [0, 1] and normalizes inside, with its backbone's own ImageNet
statistics, so the exported graph needs no per-member preprocessing outside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import timm
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn
from torchmetrics.classification import BinaryAUROC, MulticlassAUROC, MultilabelAUROC

from ..config import ConfigError, check_choice
from ..imaging import ClaheParams
from ..training.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule
from .backbones import create_backbone
from .tasks import TASKS

__all__ = ["MemberClassifier"]


class MemberClassifier(pl.LightningModule):
    """A DERNet member (arguments are LightningCLI's `model:` keys).

    Args:
        backbone: timm model name (densenet121, tf_efficientnetv2_s, resnet50, ...).
        image_size: square input size in pixels; the data module is linked to it.
        pretrained: start from ImageNet weights (local file or cache; see backbones.py).
        pretrained_path: a weights file to start from instead of the default ImageNet weights.
        in_chans: input channels of the first convolution (1: grayscale; timm adapts RGB weights).
        lr: learning rate.
        weight_decay: weight decay.
        optimizer: adamw (DERNet's) | sgd (VinDr-SpineXR's, with ``momentum``).
        momentum: SGD momentum (adamw: unused).
        schedule: cosine (DERNet's: annealed over max_epochs, per epoch; after a warm-up, per step) | step (a linear
            warm-up of ``warmup_steps``, then the rate times ``gamma`` at each of ``milestones``, per step; none:
            constant).
        warmup_steps: linear warm-up steps (either schedule).
        milestones: step schedule: optimizer steps at which the rate is multiplied by ``gamma``.
        gamma: step schedule: the factor at each milestone.
        pos_weight: loss weights (the data module supplies them): the abnormal class's in BCE (binary), each class's
            positives' (multilabel), each class's in cross-entropy (multiclass).
        drop_rate: dropout before the classifier head.
        backbone_args: more keyword arguments for ``timm.create_model`` (the demo's ResNet-50 sets
            ``zero_init_last: false``; see configs/demo/ensemble/resnet50.yaml).
        task: binary | multilabel | multiclass (tasks.py); the data module is linked to it.
        classes: the output names (the data module supplies them).
    """

    def __init__(
        self,
        backbone: str = "densenet121",
        image_size: int = 224,
        pretrained: bool = True,
        pretrained_path: str | None = None,
        in_chans: int = 1,
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        optimizer: str = "adamw",
        momentum: float = 0.9,
        schedule: str = "cosine",
        warmup_steps: int = 0,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        pos_weight: float | list[float] | None = None,
        drop_rate: float = 0.0,
        backbone_args: dict[str, Any] | None = None,
        task: str = "binary",
        classes: list[str] | None = None,
    ) -> None:
        super().__init__()
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_choice("schedule", schedule, SCHEDULES)
        check_choice("task", task, TASKS)
        classes = list(classes or ["abnormal"])
        if task != "binary" and len(classes) < 2:
            raise ConfigError(f"task {task} needs two or more classes (the data module names them), got {classes}")
        self.save_hyperparameters()
        self.hparams.classes = classes
        self.outputs = 1 if task == "binary" else len(classes)
        self.net = create_backbone(backbone, pretrained, pretrained_path, in_chans, self.outputs, backbone_args)
        if drop_rate and hasattr(self.net, "drop_rate"):
            self.net.drop_rate = drop_rate
        mean, std = _channel_stats(backbone, in_chans)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        weight = torch.tensor(pos_weight, dtype=torch.float32) if pos_weight is not None else None
        if task == "multiclass":
            self.loss = nn.CrossEntropyLoss(weight=weight)
        else:
            self.loss = nn.BCEWithLogitsLoss(pos_weight=weight)
        # torchmetrics gathers over DDP ranks itself; per class, so a class validation lacks can be left out
        if task == "binary":
            self.val_auroc = BinaryAUROC()
        elif task == "multilabel":
            self.val_auroc = MultilabelAUROC(num_labels=self.outputs, average=None)
        else:
            self.val_auroc = MulticlassAUROC(num_classes=self.outputs, average=None)
        # per output: validation images with and without it (binary: abnormal, normal)
        self.register_buffer("val_counts", torch.zeros(self.outputs, 2, dtype=torch.long), persistent=False)
        self.trained_clahe: ClaheParams | None = None  # read from a checkpoint's data settings (on_load_checkpoint)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images [B, 1, H, W] in [0, 1]: [B] of 'abnormal' (binary), else [B, classes]."""
        if images.shape[1] != self.hparams.in_chans:
            images = images.expand(-1, self.hparams.in_chans, -1, -1)
        logits = self.net((images - self.mean) / self.std)
        return logits.squeeze(1) if self.hparams.task == "binary" else logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid (binary, multilabel: each output on its own) or softmax (multiclass: they sum to 1)."""
        return torch.softmax(logits, dim=1) if self.hparams.task == "multiclass" else torch.sigmoid(logits)

    def _one_hot(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as [B, outputs] of 0/1, for the per-output counts."""
        if self.hparams.task == "multiclass":
            return nn.functional.one_hot(targets, self.outputs)
        return targets.reshape(len(targets), self.outputs).long()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = self.loss(self(images), labels)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        logits = self(images)
        self.log("val_loss", self.loss(logits, labels), prog_bar=True, sync_dist=True, batch_size=len(labels))
        self.val_auroc.update(self.probabilities(logits).detach(), labels.long())
        present = self._one_hot(labels)
        self.val_counts += torch.stack([present.sum(dim=0), (1 - present).sum(dim=0)], dim=1)

    def on_validation_epoch_end(self) -> None:
        """val_auroc, which picks best.ckpt: the AUROC (binary), or the mean one-vs-rest AUROC over the classes
        validation has both with and without (lesion types). Validation with no such class has no AUROC: it is
        logged as NaN (which ModelCheckpoint ranks last) with a warning, never as a number that could pick one."""
        counts = self.all_gather(self.val_counts).reshape(-1, self.outputs, 2).sum(dim=0)
        self.val_counts.zero_()
        scored = counts.min(dim=1).values > 0
        if not bool(scored.any()):
            self.val_auroc.reset()
            if not self.trainer.sanity_checking:
                rest = "normal" if self.outputs == 1 else "other"
                seen = ", ".join(
                    f"{int(counts[k, 0])} {name} and {int(counts[k, 1])} {rest}"
                    for k, name in enumerate(self.hparams.classes)
                )
                rank_zero_warn(
                    f"validation saw {seen} images: no AUROC, so this epoch cannot be chosen as best.ckpt "
                    "(val_auroc = nan); validate on both classes"
                )
            self.log("val_auroc", float("nan"), prog_bar=True)
            return
        auroc = self.val_auroc.compute().reshape(-1)
        self.log("val_auroc", auroc[scored.to(auroc.device)].mean(), prog_bar=True)
        self.val_auroc.reset()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Keep the CLAHE the data module trained with (Lightning saves its resolved hyperparameters beside ours)."""
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        if data.get("clahe_clip_limit") is not None and data.get("clahe_tile_grid") is not None:
            self.trained_clahe = ClaheParams(float(data["clahe_clip_limit"]), int(data["clahe_tile_grid"]))

    def configure_optimizers(self):
        h = self.hparams
        optimizer = build_optimizer(self.parameters(), h.optimizer, h.lr, h.weight_decay, h.momentum)
        epochs = int(self.trainer.max_epochs or 0)
        if h.schedule == "cosine" and epochs < 1:
            raise ConfigError(
                f"schedule cosine anneals over trainer.max_epochs, which is {self.trainer.max_epochs}; set max_epochs, "
                "or use schedule: step with max_steps"
            )
        schedule = build_schedule(optimizer, h.schedule, epochs, h.warmup_steps, h.milestones, h.gamma,
                                  total_steps=int(self.trainer.estimated_stepping_batches))  # fmt: skip
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def _channel_stats(backbone: str, in_chans: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The backbone's normalization mean/std as [1, C, 1, 1]; averaged over RGB for grayscale input."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    mean = np.array(getattr(cfg, "mean", None) or (0.485, 0.456, 0.406), dtype=np.float32)
    std = np.array(getattr(cfg, "std", None) or (0.229, 0.224, 0.225), dtype=np.float32)
    if in_chans != 3:
        mean, std = np.full(in_chans, mean.mean(), np.float32), np.full(in_chans, std.mean(), np.float32)
    return torch.from_numpy(mean).view(1, -1, 1, 1), torch.from_numpy(std).view(1, -1, 1, 1)
