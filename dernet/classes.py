"""The seven VinDr-SpineXR lesion classes: ids, names, and the order the papers' tables use.

Shared by data preparation, metrics, training and export alike, so it sits at the bottom of the layers.
"""

from __future__ import annotations

__all__ = ["CLASS_NAMES", "OTHER_CLASS", "PAPER_LABELS", "PAPER_ORDER"]

# Detection class ids, in the order of the official VinDr-SpineXR code (release spelling kept).
CLASS_NAMES: tuple[str, ...] = (
    "Osteophytes",
    "Surgical implant",
    "Spondylolysthesis",
    "Foraminal stenosis",
    "Disc space narrowing",
    "Vertebral collapse",
    "Other lesions",
)
OTHER_CLASS = CLASS_NAMES.index("Other lesions")  # where lesion types outside the seven go
# The papers' table order (LT2, LT4, LT6, LT8, LT10, LT11, LT13), as class ids, and its labels.
PAPER_ORDER: tuple[int, ...] = (4, 3, 0, 2, 1, 5, 6)
PAPER_LABELS: tuple[str, ...] = ("LT2", "LT4", "LT6", "LT8", "LT10", "LT11", "LT13")
