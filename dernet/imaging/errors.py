"""Errors and warnings of the imaging path: one line that names the file and what is wrong."""

from __future__ import annotations

__all__ = ["ImageReadError", "ImageWarning"]


class ImageReadError(ValueError):
    """An input that cannot become a radiograph (wrong format, no pixels, multi-frame, corrupt data).

    ``str(err)`` is one line, ``"<source>: <reason>"``, fit to show a user as is.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class ImageWarning(UserWarning):
    """Something was converted on the way in (colour to grayscale, for instance)."""
