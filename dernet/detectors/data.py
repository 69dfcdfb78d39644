"""The detection data: prepared PNG cache -> the gate's detector canvas (dernet.imaging.detector_array: resize, CLAHE,
letterbox) -> horizontal flip; boxes from the prepared YOLO labels onto the same canvas.

Train and validation come from the table's `split` column; the test split is read only by evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from ..datasets.cached import read_cached_image
from ..datasets.labels import read_row_boxes
from ..datasets.preprocessing import check_input_fits, resolve_clahe
from ..datasets.tables import read_table, split_rows
from ..errors import UsageError
from ..imaging import ClaheParams, detector_array

__all__ = ["DetectionDataModule", "DetectionDataset", "canvas_sample"]

Target = dict[str, torch.Tensor]


def canvas_sample(data_dir: Path, row, imgsz: int, clahe: ClaheParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One prepared image as the detector sees it: canvas [3, imgsz, imgsz] float32 in [0, 1], its boxes [N, 4]
    x1 y1 x2 y2 in canvas pixels and their class ids (0..6)."""
    array, geometry, (width, height) = detector_array(read_cached_image(data_dir / row.path), imgsz, clahe)
    boxes, classes = read_row_boxes(data_dir, row, (width, height))
    boxes = boxes + np.array([geometry.pad_x, geometry.pad_y] * 2)
    return array[0], boxes.astype(np.float32), classes


class DetectionDataset(Dataset):
    """(canvas, target) pairs in torchvision's detection format: labels are class id + 1 (0 is background)."""

    def __init__(self, data_dir: Path, rows: pd.DataFrame, imgsz: int, clahe: ClaheParams, hflip: float = 0.0):
        self.data_dir, self.rows, self.imgsz, self.clahe, self.hflip = Path(data_dir), rows, imgsz, clahe, hflip

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        canvas, boxes, classes = canvas_sample(self.data_dir, self.rows.iloc[index], self.imgsz, self.clahe)
        if self.hflip and torch.rand(()) < self.hflip:  # torch's generator: seeded per worker by Lightning
            canvas = canvas[:, :, ::-1]
            boxes = np.stack([self.imgsz - boxes[:, 2], boxes[:, 1], self.imgsz - boxes[:, 0], boxes[:, 3]], axis=1)
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)).reshape(-1, 4),
            "labels": torch.from_numpy(classes.astype(np.int64) + 1),
        }
        return torch.from_numpy(np.ascontiguousarray(canvas)), target


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """torchvision detectors take lists (images may differ in size); nothing is stacked."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


class DetectionDataModule(pl.LightningDataModule):
    """The prepared detection labels as train/val loaders (arguments are LightningCLI's `data:` keys).

    ``clahe_clip_limit`` / ``clahe_tile_grid``: None (the configs' default) takes the prepared data's values.
    """

    def __init__(
        self,
        data_dir: str = "data/prepared",
        imgsz: int = 640,
        batch_size: int = 16,
        num_workers: int = 2,
        hflip: float = 0.5,
        clahe_clip_limit: float | None = None,
        clahe_tile_grid: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        clahe = resolve_clahe(data_dir, clahe_clip_limit, clahe_tile_grid)  # saved in each checkpoint
        check_input_fits(data_dir, imgsz, "the detector's imgsz")
        self.hparams.clahe_clip_limit, self.hparams.clahe_tile_grid = clahe.clip_limit, clahe.tile_grid
        table = read_table(data_dir)
        self.train_rows, self.val_rows = split_rows(table, "train"), split_rows(table, "val")
        if not self.train_rows.abnormal.any():
            raise UsageError(f"{data_dir}: the training split has no lesion boxes to learn from")

    @property
    def clahe(self) -> ClaheParams:
        return ClaheParams(self.hparams.clahe_clip_limit, self.hparams.clahe_tile_grid)

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        return self._loader(DetectionDataset(Path(h.data_dir), self.train_rows, h.imgsz, self.clahe, h.hflip), True)

    def val_dataloader(self) -> DataLoader:
        h = self.hparams
        return self._loader(DetectionDataset(Path(h.data_dir), self.val_rows, h.imgsz, self.clahe), False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle, num_workers=workers,
                          persistent_workers=workers > 0, collate_fn=collate)  # fmt: skip
