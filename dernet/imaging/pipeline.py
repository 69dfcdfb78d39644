"""The one path from an input (file, bytes or array) to the model-ready image.

read (reduced JPEG 2000 level when enough) -> modality LUT -> VOI/window -> MONOCHROME1 inversion
-> resize to the long side -> 8-bit -> CLAHE. Preparation stores the image before CLAHE
(:func:`load_windowed`, at the cache's long side); the trainers' loaders turn that cache into a model's input
with :func:`model_input` (resize to the model's long side, CLAHE); the gate calls :func:`model_ready` on the
original file with the cache's long side and the model's, which ends in the same :func:`model_input`. CLAHE
therefore always runs at the model's input resolution. A second path to the model's input would be a bug.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .dicom import read_dicom
from .errors import ImageReadError
from .meta import ImageMeta
from .raster import array_to_unit, read_raster
from .transforms import DEFAULT_CLAHE, ClaheParams, model_input, resize_reduced, to_uint8

__all__ = ["Source", "load_windowed", "model_ready", "read_image", "sniff_format"]

Source = str | os.PathLike | bytes | np.ndarray


def sniff_format(head: bytes) -> str | None:
    """'dicom', 'png' or 'jpeg' from a file's first 132 bytes (DICOM by its DICM magic, not its name)."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    return None


def read_image(
    source: Source, target_long_side: int | None = None, name: str | None = None
) -> tuple[np.ndarray, ImageMeta]:
    """Any supported input as a float32 image in [0, 1], bone bright, plus its metadata.

    ``target_long_side`` lets a large JPEG 2000 DICOM decode at a reduced resolution level (the array is
    then smaller than ``meta.width`` x ``meta.height``). Raises :class:`ImageReadError` for unusable input.
    """
    if isinstance(source, np.ndarray):
        unit, notes = array_to_unit(source, name or "<array>")
        return unit, ImageMeta(format="array", width=unit.shape[1], height=unit.shape[0], notes=notes)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), name or "<bytes>"
    else:
        path = Path(source)
        name = name or str(source)
        if path.is_dir():
            raise ImageReadError(name, "is a folder; give an image file", "unreadable")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageReadError(name, "no such file", "not_found") from None
        except OSError as err:
            raise ImageReadError(name, f"cannot be read ({err.strerror or err})", "unreadable") from None
    image_format = sniff_format(data[:132])
    if image_format is None:
        raise ImageReadError(name, "not a DICOM, PNG or JPEG file", "not_an_image")
    if image_format == "dicom":
        return read_dicom(io.BytesIO(data), name, target_long_side)
    return read_raster(data, name, image_format)


def load_windowed(source: Source, long_side: int, name: str | None = None) -> tuple[np.ndarray, ImageMeta]:
    """The windowed, resized 8-bit image (what preparation caches) and the original's metadata."""
    unit, meta = read_image(source, target_long_side=long_side, name=name)
    resized = resize_reduced(unit, meta.reduction, (meta.width, meta.height), long_side)
    return to_uint8(resized), meta


def model_ready(
    source: Source,
    long_side: int,
    clahe: ClaheParams = DEFAULT_CLAHE,
    name: str | None = None,
    model_side: int | None = None,
) -> tuple[np.ndarray, ImageMeta]:
    """A model's input: :func:`load_windowed` at ``long_side`` (the cache's), then :func:`model_input` at
    ``model_side`` (default: the same). With the cache's long side this is bit for bit what the trainers
    compute from the prepared cache; CLAHE amplifies even one-grey-level differences of another resize chain.
    """
    windowed, meta = load_windowed(source, long_side, name=name)
    return model_input(windowed, model_side or long_side, clahe), meta
