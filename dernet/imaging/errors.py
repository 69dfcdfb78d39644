"""Why an input is not screened: one line that names the file and what is wrong, and a machine-readable kind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import UserError

__all__ = ["REASON_CODES", "ImageReadError", "rejecting_failures"]

# The kinds of unusable input (reports carry them as `reason_code`), from "no file" to "a radiograph the models cannot
# judge". `not_radiograph`, `too_small` and `near_constant` come from the gate's rejection rules (dernet.deploy),
# after a successful read; `internal_error` marks a bug met on one input (the others go on).
REASON_CODES = {
    "not_found": "no such file",
    "unreadable": "the file cannot be read (a folder, no permission, a symlink loop, an I/O error)",
    "not_an_image": "not a DICOM, PNG or JPEG file",
    "no_pixel_data": "a DICOM object without an image (a structured report, say)",
    "multi_frame": "more than one frame; one radiograph per file is expected",
    "unsupported": "an image the reader does not convert (photometric interpretation, pixel layout, encoding)",
    "corrupt": "corrupt, truncated or self-contradictory data",
    "too_large": "over the pixel or size limit, or more memory than a decoder may take",
    "timeout": "decoding took longer than its time limit",
    "not_radiograph": "a DICOM modality that is not a projection radiograph (CT, MR, ...)",
    "too_small": "smaller than a radiograph can be",
    "near_constant": "(nearly) one grey level",
    "internal_error": "a bug met on this input; its traceback went to the log",
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

    def __reduce__(self):  # picklable across the decoding worker's process boundary
        return type(self), (self.source, self.reason, self.kind)


@contextmanager
def rejecting_failures(name: str, what: str, kind: str = "corrupt") -> Iterator[None]:
    """Inside, any failure of a parser or decoder becomes an :class:`ImageReadError` (``kind``; ``too_large`` for
    memory): exceptions of every type, and the panics of native extensions, which derive from BaseException
    (pylibjpeg-rle's Rust decoder raises ``PanicException``). Interrupts and exits still pass."""
    try:
        yield
    except (ImageReadError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as err:
        detail = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        message = f"{what} ({type(err).__name__}{': ' + detail if detail else ''})"
        raise ImageReadError(name, message, "too_large" if isinstance(err, MemoryError) else kind) from None
