"""Ultralytics' YOLODataset with this project's preprocessing: the cache becomes `dernet.imaging.model_input`.

Ultralytics resizes inside `load_image` before any hook, so the subclass takes over the read of an image that
is not buffered yet: read the windowed cache, resize to imgsz and apply CLAHE with `dernet.imaging` (the same
function the gate uses), then Ultralytics' own buffer bookkeeping. Its optional albumentations pass would add a
random CLAHE to 1% of training images; the transforms are rebuilt without it.
"""

from __future__ import annotations

from copy import copy

import cv2
import numpy as np
from ultralytics.data.dataset import YOLODataset

from dernet.datasets.cached import read_cached_image
from dernet.imaging import ClaheParams, apply_clahe, model_input

__all__ = ["ClaheYOLODataset", "albumentations_without_clahe"]


def albumentations_without_clahe() -> list:
    """Ultralytics' default albumentations minus its random CLAHE (ours is applied to every image already)."""
    import albumentations as A

    return [A.Blur(p=0.01), A.MedianBlur(p=0.01)]


class ClaheYOLODataset(YOLODataset):
    def __init__(self, *args, clahe: ClaheParams, **kwargs) -> None:
        self.clahe = clahe  # set before super().__init__, which may cache images through load_image
        super().__init__(*args, **kwargs)

    def build_transforms(self, hyp=None):
        if hyp is not None and self.augment:
            hyp = copy(hyp)
            hyp.augmentations = albumentations_without_clahe()
        return super().build_transforms(hyp)

    def load_image(self, i: int, rect_mode: bool = True, resize_short: bool = False):
        if self.ims[i] is not None:  # buffered or cached in RAM: already processed
            return self.ims[i], self.im_hw0[i], self.im_hw[i]
        if not rect_mode or resize_short:  # modes this project does not use: Ultralytics' resize, then CLAHE
            image, hw0, hw = super().load_image(i, rect_mode, resize_short)
            gray = image if image.ndim == 2 or image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            processed = self._channels(apply_clahe(np.ascontiguousarray(gray.squeeze()), self.clahe))
            if self.ims[i] is not None:  # Ultralytics buffered the unequalised image: keep the processed one
                self.ims[i] = processed
            return processed, hw0, hw
        path = self.im_files[i]
        cached = read_cached_image(path)
        size = max(self.imgsz) if isinstance(self.imgsz, (list, tuple)) else self.imgsz
        image = self._channels(model_input(cached, size, self.clahe))
        if self.augment and self.cache != "ram":  # Ultralytics' buffer of recent images, used by mosaic
            self.ims[i], self.im_hw0[i], self.im_hw[i] = image, cached.shape[:2], image.shape[:2]
            self.buffer.append(i)
            if 1 < len(self.buffer) >= self.max_buffer_length:
                j = self.buffer.pop(0)
                self.ims[j], self.im_hw0[j], self.im_hw[j] = None, None, None
        return image, cached.shape[:2], image.shape[:2]

    def _channels(self, gray: np.ndarray) -> np.ndarray:
        return gray[..., None] if self.channels == 1 else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
