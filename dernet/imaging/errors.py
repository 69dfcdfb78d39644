"""Why an input is not screened: one line that names the file and what is wrong, and a machine-readable kind."""

from __future__ import annotations

from ..errors import UserError

__all__ = ["REASON_CODES", "ImageReadError"]

# The kinds of unusable input (reports carry them as `reason_code`), from "no file" to "a radiograph the models cannot
# judge". The last three come from the gate's rejection rules (dernet.deploy.rejection), after a successful read.
REASON_CODES = {
    "not_found": "no such file",
    "unreadable": "the file cannot be read (a folder, no permission, an I/O error)",
    "not_an_image": "not a DICOM, PNG or JPEG file",
    "no_pixel_data": "a DICOM object without an image (a structured report, say)",
    "multi_frame": "more than one frame; one radiograph per file is expected",
    "unsupported": "an image the reader does not convert (photometric interpretation, pixel layout)",
    "corrupt": "corrupt or truncated data",
    "not_radiograph": "a DICOM modality that is not a projection radiograph (CT, MR, ...)",
    "too_small": "smaller than a radiograph can be",
    "near_constant": "(nearly) one grey level",
}


class ImageReadError(UserError, ValueError):
    """An input that cannot become a radiograph, or one the gate will not judge.

    ``str(err)`` is one line, ``"<source>: <reason>"``, fit to show a user as is; ``kind`` is one of
    :data:`REASON_CODES`.
    """

    def __init__(self, source: str, reason: str, kind: str) -> None:
        if kind not in REASON_CODES:
            raise ValueError(f"unknown reason code '{kind}'; known: {', '.join(REASON_CODES)}")
        self.source, self.reason, self.kind = str(source), reason, kind
        super().__init__(f"{self.source}: {reason}")
