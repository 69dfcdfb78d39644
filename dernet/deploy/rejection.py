"""Outlier rejection: inputs that read fine but are not a radiograph the models can judge.

Unreadable inputs (no pixel data, multi-frame, corrupt, not an image) are rejected earlier by the reader with
its own reason; these checks run on what it returns, before classifying. A missing Modality tag is normal
(the VinDr-SpineXR release has none) and never a reason.
"""

from __future__ import annotations

import numpy as np

from ..imaging import ImageMeta, ImageReadError
from .manifest import Rejection

__all__ = ["check_screenable"]


def check_screenable(meta: ImageMeta, windowed: np.ndarray, rules: Rejection, name: str) -> None:
    """Raise :class:`ImageReadError` (kind ``not_radiograph``, ``too_small`` or ``near_constant``) when the image
    is not screened."""
    modality = (meta.modality or "").upper()
    if modality in rules.modalities:
        reason = f"DICOM modality {modality} is not a projection radiograph; X-ray images (DX, CR, ...) are screened"
        raise ImageReadError(name, reason, "not_radiograph")
    if min(meta.width, meta.height) < rules.min_side:
        reason = (
            f"image too small ({meta.width}x{meta.height} px; at least {rules.min_side} px on the short side is "
            "expected of a radiograph)"
        )
        raise ImageReadError(name, reason, "too_small")
    spread = float(windowed.std())
    if spread < rules.min_std:
        reason = f"near-constant image (standard deviation {spread:.2f} grey levels; at least {rules.min_std} expected)"
        raise ImageReadError(name, reason, "near_constant")
