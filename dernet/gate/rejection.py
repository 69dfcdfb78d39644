"""Outlier rejection: inputs that read fine but are not a radiograph the models can judge.

Unreadable inputs (no pixel data, multi-frame, corrupt, not an image) are rejected earlier by the reader with
its own reason; these checks run on what it returns, before classifying. A missing Modality tag is normal
(the VinDr-SpineXR release has none) and never a reason.
"""

from __future__ import annotations

import numpy as np

from ..export.manifest import Rejection
from ..imaging import ImageMeta

__all__ = ["rejection_reason"]


def rejection_reason(meta: ImageMeta, windowed: np.ndarray, rules: Rejection) -> str | None:
    """Why the image is not screened, or None when it may be."""
    modality = (meta.modality or "").upper()
    if modality in rules.modalities:
        return f"DICOM modality {modality} is not a projection radiograph; only X-ray images (DX, CR, ...) are screened"
    if min(meta.width, meta.height) < rules.min_side:
        return (
            f"image too small ({meta.width}x{meta.height} px; at least {rules.min_side} px on the short side is "
            "expected of a radiograph)"
        )
    spread = float(windowed.std())
    if spread < rules.min_std:
        return f"near-constant image (standard deviation {spread:.2f} grey levels; at least {rules.min_std} expected)"
    return None
