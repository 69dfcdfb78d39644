"""DICOM radiographs to a bone-bright float image in [0, 1], at a reduced JPEG 2000 level when that is enough.

Order (PS3.3 C.11): modality LUT / rescale -> VOI LUT or window -> MONOCHROME1 inversion. Decoding is
pydicom's, with the pylibjpeg plugins; the reduced-resolution path hands the JPEG 2000 codestream to Pillow,
whose reader decodes a lower resolution level without decoding the full image.
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.utils import get_j2k_parameters
from pydicom.uid import JPEG2000, JPEG2000Lossless

from .errors import ImageReadError
from .meta import ImageMeta

__all__ = ["read_dicom", "reduction_level", "set_decoder_threads"]

_J2K_SYNTAXES = {JPEG2000Lossless, JPEG2000}
_MONOCHROME = {"MONOCHROME1", "MONOCHROME2"}
AUTO_WINDOW_PERCENTILES = (0.5, 99.5)
AUTO_WINDOW_NOTE = "no window tags: windowed to the image's own 0.5-99.5 percentile range"


def set_decoder_threads(threads: int | None = None) -> None:
    """Let OpenJPEG decode JPEG 2000 code-blocks on ``threads`` threads (default: every core) in this process.

    OpenJPEG reads ``OPJ_NUM_THREADS`` when a decoder is created and otherwise uses one thread; decoding dominates
    reading a release image, and the result does not depend on the thread count. A process-wide setting, so the
    entry points (the command lines, the web server) call this, never the library; a value already in the
    environment wins.
    """
    os.environ.setdefault("OPJ_NUM_THREADS", str(threads or os.cpu_count() or 1))


def reduction_level(long_side: int, target_long_side: int | None) -> int:
    """Largest n with long_side / 2**n >= target: how many JPEG 2000 resolution levels can be skipped."""
    if not target_long_side:
        return 0
    level = 0
    while long_side / 2 ** (level + 1) >= target_long_side:
        level += 1
    return level


def read_dicom(source: str | BinaryIO, name: str, target_long_side: int | None = None) -> tuple[np.ndarray, ImageMeta]:
    """Read one single-frame DICOM image as float32 in [0, 1], bone bright, plus its metadata.

    With ``target_long_side``, a JPEG 2000 file at least twice that size is decoded at a reduced level;
    the returned array is then smaller than the original, whose size the metadata records.
    """
    ds = _read_dataset(source, name)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    meta = _meta(ds, photometric)

    level = 0
    if photometric in _MONOCHROME and ds.file_meta.TransferSyntaxUID in _J2K_SYNTAXES:
        level = reduction_level(max(meta.width, meta.height), target_long_side)
    pixels = None
    while level and pixels is None:
        # Pillow rejects some levels for some odd image sizes ("broken data stream"): try the next finer one.
        pixels = _decode_reduced(ds, level)
        level = level if pixels is not None else level - 1
    if pixels is None:
        pixels = _decode_full(ds, name)
    meta = meta.with_reduction(level)

    if photometric in _MONOCHROME:
        if not _has_window(ds):
            meta = meta.with_note(AUTO_WINDOW_NOTE)
        return _monochrome_to_unit(pixels, ds, photometric), meta
    unit = _colour_to_unit(pixels, ds, photometric, name)
    return unit, meta.with_note(f"colour DICOM ({photometric}) converted to grayscale")


def _read_dataset(source: str | BinaryIO, name: str) -> Dataset:
    try:
        ds = pydicom.dcmread(source)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as err:
        raise ImageReadError(name, f"not a readable DICOM file ({err})", "corrupt") from None
    if "PixelData" not in ds:
        sop_class = getattr(ds.get("SOPClassUID"), "name", None) or "unknown SOP class"
        raise ImageReadError(name, f"DICOM without pixel data ({sop_class}); an image is expected", "no_pixel_data")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ImageReadError(
            name, f"multi-frame DICOM ({frames} frames); one radiograph per file is expected", "multi_frame"
        )
    for tag in ("Rows", "Columns"):
        if not ds.get(tag):
            raise ImageReadError(name, f"DICOM without {tag}; the image geometry is unknown", "corrupt")
    return ds


def _meta(ds: Dataset, photometric: str) -> ImageMeta:
    return ImageMeta(
        format="dicom",
        width=int(ds.Columns),
        height=int(ds.Rows),
        modality=ds.get("Modality") or None,
        photometric=photometric or None,
        bits_stored=int(ds.get("BitsStored", 0)) or None,
        transfer_syntax=str(ds.file_meta.get("TransferSyntaxUID", "")) or None,
    )


def _decode_full(ds: Dataset, name: str) -> np.ndarray:
    try:
        pixels = ds.pixel_array
    except Exception as err:  # decoders raise many types (RuntimeError, ValueError, ...) for bad data
        raise ImageReadError(
            name, f"corrupt or truncated pixel data ({type(err).__name__}: {err})", "corrupt"
        ) from None
    pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)  # pydicom 3 may keep big-endian order
    expected_ndim = 3 if int(ds.get("SamplesPerPixel", 1)) > 1 else 2
    if pixels.ndim != expected_ndim:
        raise ImageReadError(
            name, f"{pixels.ndim}-D pixel data of shape {pixels.shape}; a 2-D image is expected", "unsupported"
        )
    return pixels


def _decode_reduced(ds: Dataset, level: int) -> np.ndarray | None:
    """Decode a JPEG 2000 frame at 1/2**level resolution with Pillow; None if this file does not allow it."""
    try:
        codestream = get_frame(ds.PixelData, 0, number_of_frames=1)
        params: dict[str, Any] = get_j2k_parameters(codestream)
        if not params or params.get("is_signed") or int(ds.get("SamplesPerPixel", 1)) != 1:
            return None
        with Image.open(io.BytesIO(codestream)) as image:
            image.reduce = level
            image.load()
            pixels = np.asarray(image)
    except Exception:  # anything unusual: the full decode below is always correct, only slower
        return None
    precision = int(params["precision"])
    if pixels.dtype == np.uint16 and precision < 16:
        pixels = pixels >> (16 - precision)  # Pillow scales n-bit samples up to 16 bits
    return pixels


def _monochrome_to_unit(pixels: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    values = apply_modality_lut(pixels, ds)
    if _has_window(ds):
        windowed = apply_voi_lut(values, ds)
        # The VOI output range depends on tags (bits, rescale, LUT descriptor); probing the extremes reads it
        # off pydicom's own transform instead of re-deriving it.
        low, high = apply_voi_lut(np.array([-1e12, 1e12]), ds)
        unit = (windowed - low) / max(high - low, 1e-12)
    else:
        unit = _auto_window(values)
    unit = np.clip(unit, 0.0, 1.0).astype(np.float32)
    return 1.0 - unit if photometric == "MONOCHROME1" else unit


def _colour_to_unit(pixels: np.ndarray, ds: Dataset, photometric: str, name: str) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    elif pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ImageReadError(name, f"unsupported photometric interpretation {photometric or '(none)'}", "unsupported")
    gray = cv2.cvtColor(pixels.astype(np.float32), cv2.COLOR_RGB2GRAY)
    if photometric == "PALETTE COLOR":
        max_value = float(np.iinfo(pixels.dtype).max)  # the LUT's output depth
    else:
        max_value = float(2 ** int(ds.get("BitsStored", 8 * pixels.dtype.itemsize)) - 1)
    return np.clip(gray / max_value, 0.0, 1.0)


def _has_window(ds: Dataset) -> bool:
    return "VOILUTSequence" in ds or "WindowCenter" in ds


def _auto_window(values: np.ndarray) -> np.ndarray:
    """Window fallback when the file carries none: the image's own 0.5-99.5 percentile range.

    Percentiles rather than min-max: extreme single pixels (noise, burned-in marks) set a min-max window,
    and a reduced-resolution decode averages them away, so the two decodes would disagree.
    """
    low, high = (float(v) for v in np.percentile(values, AUTO_WINDOW_PERCENTILES))
    return (values.astype(np.float32) - low) / (high - low) if high > low else np.zeros(values.shape, np.float32)
