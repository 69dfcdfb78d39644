"""The one path from an input (file, bytes or array) to the model-ready image.

read (reduced JPEG 2000 level when enough) -> modality LUT -> VOI/window -> MONOCHROME1 inversion
-> resize to the long side -> 8-bit -> CLAHE. Preparation stores the image before CLAHE
(:func:`load_windowed`, at the cache's long side); the trainers' loaders turn that cache into a model's input
with :func:`model_input` (resize to the model's long side, CLAHE); the gate (dernet.deploy's Screener) calls
:func:`load_windowed` on the original file at the cache's long side, then the same :func:`model_input` per model.
CLAHE therefore always runs at the model's input resolution. A second path to the model's input would be a bug.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

from .dicom import DEFAULT_MAX_PIXELS, read_dicom
from .errors import ImageReadError
from .meta import ImageMeta
from .raster import array_to_unit, read_raster
from .transforms import resize_reduced, to_uint8

__all__ = ["Source", "load_windowed", "max_input_bytes", "read_image", "read_input_file", "sniff_format"]

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
    source: Source, target_long_side: int | None = None, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageMeta]:
    """Any supported input as a float32 image in [0, 1], bone bright, plus its metadata.

    ``target_long_side`` lets a large JPEG 2000 DICOM decode at a reduced resolution level (the array is
    then smaller than ``meta.width`` x ``meta.height``). Whatever the input holds, the answer is an image or an
    :class:`ImageReadError` with a kind: the work done is bounded by ``max_pixels`` (checked in each header before
    decoding) and by a file size of at most :func:`max_input_bytes`.
    """
    if isinstance(source, np.ndarray):
        name = name or "<array>"
        if source.size > 4 * max_pixels:
            raise ImageReadError(name, f"array of shape {source.shape} is over the pixel limit", "too_large")
        unit, notes = array_to_unit(source, name)
        return unit, ImageMeta(format="array", width=unit.shape[1], height=unit.shape[0], notes=notes)
    limit = max_input_bytes(max_pixels)
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), name or "<bytes>"
        if len(data) > limit:
            raise ImageReadError(name, f"{len(data) >> 20} MB is over the {limit >> 20} MB input limit", "too_large")
    else:
        name = name or str(source)
        data = read_input_file(Path(source), name, limit)
    image_format = sniff_format(data[:132])
    if image_format is None:
        raise ImageReadError(name, "not a DICOM, PNG or JPEG file", "not_an_image")
    if image_format == "dicom":
        unit, meta = read_dicom(data, name, target_long_side, max_pixels)
    else:
        unit, meta = read_raster(data, name, image_format, max_pixels)
    if unit.ndim != 2 or unit.dtype != np.float32 or not np.isfinite(unit).all():  # the contract, whatever came in
        raise ImageReadError(name, f"decoded to {unit.dtype} pixels of shape {unit.shape}; not a 2-D image", "corrupt")
    return unit, meta


def max_input_bytes(max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    """The largest file the reader takes: four bytes per allowed pixel (uncompressed 32-bit, or 8-bit colour with
    room to spare) plus 16 MB of header; compressed radiographs are far smaller."""
    return 4 * max_pixels + (16 << 20)


def read_input_file(path: Path, name: str, limit: int) -> bytes:
    """The file's bytes, or an :class:`ImageReadError` saying why not: only regular files (a FIFO would block) of at
    most ``limit`` bytes are read. Batch screening reads files here before handing their bytes to the models."""
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise ImageReadError(name, "is a folder; give an image file", "unreadable")
        if not stat.S_ISREG(status.st_mode):
            raise ImageReadError(name, "is not a regular file (a device, a pipe or a socket)", "unreadable")
        if status.st_size > limit:
            size = f"{status.st_size >> 20} MB"
            raise ImageReadError(name, f"{size} is over the {limit >> 20} MB input limit", "too_large")
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise ImageReadError(name, "no such file", "not_found") from None
    except OSError as err:  # a symlink loop, no permission, an I/O error
        raise ImageReadError(name, f"cannot be read ({err.strerror or err})", "unreadable") from None
    if len(data) > limit:  # it grew after we looked
        raise ImageReadError(name, f"over the {limit >> 20} MB input limit", "too_large")
    return data


def load_windowed(
    source: Source, long_side: int, name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageMeta]:
    """The windowed, resized 8-bit image (what preparation caches) and the original's metadata."""
    unit, meta = read_image(source, target_long_side=long_side, name=name, max_pixels=max_pixels)
    resized = resize_reduced(unit, meta.reduction, (meta.width, meta.height), long_side)
    return to_uint8(resized), meta
