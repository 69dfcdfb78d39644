"""The classification data: prepared PNG cache -> model input (resize, CLAHE) -> square canvas -> augmentation.

Train and validation come from the table's `split` column, or, for cross-validation, from its `fold` column
(train and val together, by study). The test split is read only by evaluation, never by training or fitting.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from ..config import ConfigError
from ..datasets.cached import read_cached_image
from ..datasets.preprocessing import check_input_fits, resolve_clahe
from ..datasets.tables import read_table, split_rows
from ..errors import UsageError
from ..imaging import ClaheParams, classifier_canvas, model_input
from .tasks import class_weights, task_classes, task_targets

__all__ = ["RadiographDataModule", "RadiographDataset", "read_table", "split_rows"]

BALANCE_CHOICES = ("loss", "sampler", "none")


class RadiographDataset(Dataset):
    """(image, target) pairs: image float32 [1, size, size] in [0, 1]; target the task's (tasks.task_targets),
    by default 0.0 normal / 1.0 abnormal."""

    def __init__(
        self,
        data_dir: Path,
        rows: pd.DataFrame,
        image_size: int,
        clahe: ClaheParams,
        augment: A.Compose | None,
        targets: np.ndarray | None = None,
    ) -> None:
        self.data_dir, self.rows, self.image_size = Path(data_dir), rows, image_size
        self.clahe, self.augment = clahe, augment
        self.targets = rows.abnormal.to_numpy(dtype=np.float32) if targets is None else targets

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.rows.iloc[index]
        cached = read_cached_image(self.data_dir / row.path)
        image = classifier_canvas(model_input(cached, self.image_size, self.clahe), self.image_size)
        if self.augment is not None:
            image = self.augment(image=image)["image"]
        tensor = torch.from_numpy(np.ascontiguousarray(image)).float().div_(255.0).unsqueeze(0)
        return tensor, torch.as_tensor(self.targets[index])


class RadiographDataModule(pl.LightningDataModule):
    """The prepared classification table as train/val loaders (arguments are LightningCLI's `data:` keys).

    ``clahe_clip_limit`` / ``clahe_tile_grid``: None (the configs' default) takes the prepared data's values.
    ``task`` comes from the model's (DERNetCLI links them); ``classes`` and ``pos_weight`` go back to it.
    """

    def __init__(
        self,
        data_dir: str = "data/prepared",
        task: str = "binary",
        image_size: int = 224,
        batch_size: int = 16,
        num_workers: int = 2,
        val_fold: int | None = None,
        balance: str = "loss",
        clahe_clip_limit: float | None = None,
        clahe_tile_grid: int | None = None,
        hflip: float = 0.5,
        rotate_degrees: float = 5.0,
        scale: float = 0.05,
        translate: float = 0.03,
        brightness_contrast: float = 0.1,
    ) -> None:
        super().__init__()
        if balance not in BALANCE_CHOICES:
            raise ConfigError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, got '{balance}'")
        self.save_hyperparameters()
        # CLAHE: the prepared data's (preprocessing.json) unless given explicitly. The resolved values go into the
        # hyperparameters Lightning saves in each checkpoint, so it says what this member was trained with.
        clahe = resolve_clahe(data_dir, clahe_clip_limit, clahe_tile_grid)
        check_input_fits(data_dir, image_size, "the member's image_size")
        self.hparams.clahe_clip_limit, self.hparams.clahe_tile_grid = clahe.clip_limit, clahe.tile_grid
        self.classes = task_classes(task, data_dir)
        self.table = read_table(data_dir)
        if val_fold is not None and not (self.table.fold >= 0).any():
            raise UsageError(
                f"{data_dir}: has no cross-validation folds (prepared before folder-per-class datasets had them); "
                "prepare it again (python -m dernet.datasets prepare --layout imagefolder), or train without val_fold"
            )
        self.train_rows = split_rows(self.table, "train", val_fold)
        self.val_rows = split_rows(self.table, "val", val_fold)
        self.train_targets = task_targets(self.train_rows, task, self.classes)
        self.val_targets = task_targets(self.val_rows, task, self.classes)
        _check_training_targets(data_dir, task, self.classes, self.train_targets)

    @property
    def pos_weight(self) -> float | list[float] | None:
        """Loss weights from the training split (tasks.class_weights; None unless balance='loss'): binary, the
        normal/abnormal ratio; multilabel, that ratio per class; multiclass, inverse class frequency."""
        if self.hparams.balance != "loss":
            return None
        return class_weights(self.train_targets, self.hparams.task, len(self.classes))

    def _augment(self) -> A.Compose:
        h = self.hparams
        return A.Compose(
            [
                A.HorizontalFlip(p=h.hflip),
                A.Affine(
                    rotate=(-h.rotate_degrees, h.rotate_degrees),
                    scale=(1 - h.scale, 1 + h.scale),
                    translate_percent=(-h.translate, h.translate),
                    border_mode=cv2.BORDER_CONSTANT,
                    fill=0,
                    p=0.7,
                ),
                A.RandomBrightnessContrast(
                    brightness_limit=h.brightness_contrast, contrast_limit=h.brightness_contrast, p=0.5
                ),
            ],
            # albumentations 2 keeps its own generator, seeded from OS entropy unless given a seed: derive it
            # from torch's (seed_everything); each loader worker re-seeds it in _seed_augmentation.
            seed=torch.initial_seed() % 2**32,
        )

    def dataset(self, rows: pd.DataFrame, targets: np.ndarray, augment: bool = False) -> RadiographDataset:
        clahe = ClaheParams(self.hparams.clahe_clip_limit, self.hparams.clahe_tile_grid)
        return RadiographDataset(
            Path(self.hparams.data_dir),
            rows,
            self.hparams.image_size,
            clahe,
            self._augment() if augment else None,
            targets,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset(self.train_rows, self.train_targets, augment=True)
        sampler = None
        if self.hparams.balance == "sampler":
            # each image weighted by 1 / its stratum's size: the class (multiclass), else normal vs abnormal
            strata = self.train_targets if self.hparams.task == "multiclass" else self.train_rows.abnormal.to_numpy()
            _, stratum, sizes = np.unique(strata, return_inverse=True, return_counts=True)
            weights = 1.0 / sizes[stratum]
            sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(weights))
        return self._loader(dataset, shuffle=sampler is None, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.val_rows, self.val_targets), shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool, sampler=None) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            worker_init_fn=_seed_augmentation,
            drop_last=False,
        )


def _check_training_targets(data_dir: str, task: str, classes: list[str], targets: np.ndarray) -> None:
    """A split a task cannot learn from is a user error naming the data."""
    if task == "binary" and len(np.unique(targets)) < 2:
        raise UsageError(f"{data_dir}: the training split needs both normal and abnormal images")
    if task == "multilabel" and not targets.any():
        raise UsageError(f"{data_dir}: the training split has no lesions of any type to learn")
    if task == "multiclass":
        absent = [name for i, name in enumerate(classes) if not (targets == i).any()]
        if absent:
            raise UsageError(f"{data_dir}: the training split has no images of {', '.join(absent)}")


def _seed_augmentation(worker_id: int) -> None:
    """Give each loader worker its own reproducible augmentation stream (torch's per-worker seed)."""
    info = torch.utils.data.get_worker_info()
    augment = getattr(info.dataset, "augment", None)
    if augment is not None:
        augment.set_random_seed(info.seed % 2**32)
    np.random.seed(info.seed % 2**32)
