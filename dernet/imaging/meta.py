"""What the imaging path reports about an input: geometry and encoding, never patient identifiers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["ImageMeta"]


@dataclass(frozen=True)
class ImageMeta:
    """Size of the original image and how it was encoded.

    ``width``/``height`` are the original image's, even when it was decoded at a reduced resolution
    level (``reduction``: the number of halvings skipped). ``notes`` say what the reader converted on the way in
    (colour to grayscale, a window from the image's own range, ...): data for the report, not process-wide warnings.
    """

    format: str  # "dicom", "png", "jpeg" or "array"
    width: int
    height: int
    modality: str | None = None
    photometric: str | None = None
    bits_stored: int | None = None
    transfer_syntax: str | None = None
    reduction: int = 0
    notes: tuple[str, ...] = ()
    study_uid: str | None = None  # a DICOM's StudyInstanceUID: groups views into studies; never in a report

    def with_reduction(self, level: int) -> ImageMeta:
        return replace(self, reduction=level)

    def with_note(self, note: str) -> ImageMeta:
        return replace(self, notes=(*self.notes, note))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
