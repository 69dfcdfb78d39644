"""PNG (8/16-bit) and JPEG files to a float image in [0, 1], through OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

from .errors import ImageReadError, rejecting_failures
from .headers import jpeg_info, png_chunk_overrun, png_info
from .meta import ImageMeta

__all__ = ["array_to_unit", "read_raster"]


def read_raster(data: bytes, name: str, image_format: str, max_pixels: int) -> tuple[np.ndarray, ImageMeta]:
    """Decode PNG or JPEG bytes whose header is within ``max_pixels``; colour is converted to grayscale (with a note
    when the channels differ)."""
    kind = image_format.upper()
    info = png_info(data) if image_format == "png" else jpeg_info(data)
    if info is None:
        raise ImageReadError(name, f"corrupt {kind} data (no readable image header)", "corrupt")
    if not (info.width and info.height):
        raise ImageReadError(name, f"corrupt {kind} header ({info.width}x{info.height} px)", "corrupt")
    if info.width * info.height > max_pixels:
        size = f"{info.width}x{info.height} px"
        raise ImageReadError(name, f"{size} is over the limit of {max_pixels / 1e6:g} megapixels", "too_large")
    overrun = png_chunk_overrun(data) if image_format == "png" else None
    if overrun is not None:
        raise ImageReadError(name, f"corrupt or truncated PNG data ({overrun} runs past the end)", "corrupt")
    with rejecting_failures(name, f"corrupt or truncated {kind} data"):
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageReadError(name, f"corrupt or truncated {kind} data", "corrupt")
    unit, notes = array_to_unit(pixels, name)
    bits = 16 if pixels.dtype == np.uint16 else 8
    photometric = "MONOCHROME2" if pixels.ndim == 2 else "RGB"
    height, width = unit.shape
    meta = ImageMeta(image_format, width, height, photometric=photometric, bits_stored=bits, notes=notes)
    return unit, meta


def array_to_unit(pixels: np.ndarray, name: str = "<array>") -> tuple[np.ndarray, tuple[str, ...]]:
    """A decoded display image (uint8, uint16 or float) to float32 in [0, 1], grayscale, and what was converted.

    8-bit images and floats in [0, 1] are display-ready and kept as they are; other integer or float
    images carry no window, so they are stretched to their own range like a DICOM without window tags.
    """
    notes: tuple[str, ...] = ()
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # alpha carries no anatomy
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        if not (np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2])):
            notes = ("colour image converted to grayscale",)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY)
    if pixels.ndim != 2:
        raise ImageReadError(
            name, f"pixel data of shape {pixels.shape}; a 2-D grayscale or colour image is expected", "unsupported"
        )
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0, notes
    if pixels.dtype.kind == "f" and pixels.size and 0.0 <= pixels.min() and pixels.max() <= 1.0:
        return pixels.astype(np.float32), notes
    if pixels.dtype.kind in "uif":
        notes = (*notes, f"{pixels.dtype} pixels without a window: stretched to the image's own range")
        low, high = float(pixels.min()), float(pixels.max())
        if high <= low:
            return np.zeros(pixels.shape, np.float32), notes
        return (pixels.astype(np.float32) - low) / (high - low), notes
    raise ImageReadError(name, f"unsupported pixel type {pixels.dtype}", "unsupported")
