"""DICOM radiographs to a bone-bright float image in [0, 1], at a reduced JPEG 2000 level when that is enough.

Order (PS3.3 C.11): modality LUT / rescale -> VOI LUT or window -> MONOCHROME1 inversion. The header is validated
first (dernet.imaging.dicom_header); decoding is pydicom's, with the pylibjpeg plugins; the reduced-resolution
path hands the JPEG 2000 codestream to Pillow, whose reader decodes a lower resolution level without decoding
the full image. Modality or VOI tags that cannot be applied are ignored with a note, and the image is windowed
on its own range instead: a radiograph with a broken window is still a radiograph.
"""

from __future__ import annotations

import io
import os

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000, JPEG2000Lossless

from .dicom_header import DicomHeader, parse_dicom
from .errors import ImageReadError, rejecting_failures
from .headers import j2k_info
from .meta import ImageMeta

__all__ = ["DEFAULT_MAX_PIXELS", "read_dicom", "reduction_level", "set_decoder_threads"]

DEFAULT_MAX_PIXELS = 60_000_000  # larger than any radiograph (the release's are 8 MP); bounds every decode
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


def _study_uid(ds) -> str | None:
    """The StudyInstanceUID, or None when absent or unreadable: it only groups views, so a broken one must not
    stop the image from being screened."""
    try:
        return str(ds.get("StudyInstanceUID") or "").strip() or None
    except Exception:  # pydicom decodes the element lazily, here: any malformed value
        return None


def read_dicom(
    data: bytes, name: str, target_long_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, ImageMeta]:
    """Read one single-frame DICOM image as float32 in [0, 1], bone bright, plus its metadata.

    With ``target_long_side``, a JPEG 2000 file at least twice that size is decoded at a reduced level;
    the returned array is then smaller than the original, whose size the metadata records. Raises
    :class:`ImageReadError` for anything else than such an image, whatever the bytes hold.
    """
    ds, header = parse_dicom(data, name, max_pixels)
    meta = ImageMeta(
        "dicom", header.columns, header.rows, modality=header.modality, photometric=header.photometric,
        bits_stored=header.bits_stored, transfer_syntax=header.transfer_syntax,
        study_uid=_study_uid(ds),
    )  # fmt: skip
    monochrome = header.photometric in _MONOCHROME
    level = 0
    if monochrome and header.transfer_syntax in _J2K_SYNTAXES:
        level = reduction_level(max(header.columns, header.rows), target_long_side)
    pixels = None
    while level and pixels is None:
        # Pillow rejects some levels for some odd image sizes ("broken data stream"): try the next finer one.
        pixels = _decode_reduced(ds, level)
        level = level if pixels is not None else level - 1
    if pixels is None:
        pixels = _decode_full(ds, header, name)
    meta = meta.with_reduction(level)
    if monochrome:
        return _monochrome_to_unit(pixels, ds, header, meta)
    with rejecting_failures(name, f"colour conversion of {header.photometric} failed"):
        unit = _colour_to_unit(pixels, ds, header)
    return unit, meta.with_note(f"colour DICOM ({header.photometric}) converted to grayscale")


def _decode_full(ds: Dataset, header: DicomHeader, name: str) -> np.ndarray:
    with rejecting_failures(name, "corrupt or truncated pixel data"):
        pixels = ds.pixel_array
        pixels = pixels.astype(pixels.dtype.newbyteorder("="), copy=False)  # pydicom 3 may keep big-endian order
    expected = (header.rows, header.columns) if header.samples == 1 else (header.rows, header.columns, 3)
    if pixels.shape != expected:
        raise ImageReadError(name, f"pixel data of shape {pixels.shape}; {expected} was declared", "corrupt")
    return pixels


def _decode_reduced(ds: Dataset, level: int) -> np.ndarray | None:
    """Decode a JPEG 2000 frame at 1/2**level resolution with Pillow; None if this file does not allow it (the full
    decode is then always correct, only slower). The header was validated: the frame is a mono image of its size."""
    try:
        codestream = bytes(get_frame(ds.PixelData, 0, number_of_frames=1))
        info = j2k_info(codestream)
        if info is None or info.signed:
            return None
        with Image.open(io.BytesIO(codestream), formats=["JPEG2000"]) as image:
            image.reduce = level
            image.load()
            pixels = np.asarray(image)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # Pillow's refusals and decoder failures alike: the full decode decides
        return None
    if pixels.dtype == np.uint16 and info.precision < 16:
        pixels = pixels >> (16 - info.precision)  # Pillow scales n-bit samples up to 16 bits
    return pixels


def _monochrome_to_unit(
    pixels: np.ndarray, ds: Dataset, header: DicomHeader, meta: ImageMeta
) -> tuple[np.ndarray, ImageMeta]:
    try:
        values = apply_modality_lut(pixels, ds)
        unit = _voi_to_unit(values, ds) if _has_window(ds) else None
        if unit is None and _has_window(ds):
            meta = meta.with_note("window tags unusable: windowed to the image's own 0.5-99.5 percentile range")
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # pydicom's LUT functions raise many types for malformed LUT or rescale tags
        values, unit = pixels, None
        meta = meta.with_note("modality LUT or rescale tags unusable: windowed to the image's own range")
    if unit is None:
        unit = _auto_window(values)
        if not _has_window(ds):
            meta = meta.with_note(AUTO_WINDOW_NOTE)
    unit = np.clip(unit, 0.0, 1.0).astype(np.float32)
    return (1.0 - unit if header.photometric == "MONOCHROME1" else unit), meta


def _voi_to_unit(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """The VOI LUT or window of the file, scaled to [0, 1]; None when it cannot be applied."""
    try:
        windowed = apply_voi_lut(values, ds)
        # The VOI output range depends on tags (bits, rescale, LUT descriptor); probing the extremes reads it
        # off pydicom's own transform instead of re-deriving it.
        low, high = (float(v) for v in np.asarray(apply_voi_lut(np.array([-1e12, 1e12]), ds)).ravel()[:2])
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:  # a window width of 0, a LUT descriptor that contradicts its data, text where numbers belong
        return None
    if not (np.isfinite(low) and np.isfinite(high) and high > low) or windowed.shape != values.shape:
        return None
    unit = (np.asarray(windowed, dtype=np.float64) - low) / (high - low)
    return unit if np.isfinite(unit).all() else None


def _colour_to_unit(pixels: np.ndarray, ds: Dataset, header: DicomHeader) -> np.ndarray:
    if header.photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
        max_value = float(np.iinfo(pixels.dtype).max)  # the LUT's output depth
    else:
        max_value = float(2**header.bits_stored - 1)
    gray = cv2.cvtColor(pixels.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return np.clip(gray / max_value, 0.0, 1.0)


def _has_window(ds: Dataset) -> bool:
    return "VOILUTSequence" in ds or "WindowCenter" in ds


def _auto_window(values: np.ndarray) -> np.ndarray:
    """Window fallback when the file carries none: the image's own 0.5-99.5 percentile range.

    Percentiles rather than min-max: extreme single pixels (noise, burned-in marks) set a min-max window,
    and a reduced-resolution decode averages them away, so the two decodes would disagree.
    """
    values = np.asarray(values)
    if values.dtype.kind == "f":
        values = np.nan_to_num(values)  # NaN or infinity from float rescale tags: finite, so percentiles exist
    low, high = (float(v) for v in np.percentile(values, AUTO_WINDOW_PERCENTILES))
    return (values.astype(np.float32) - low) / (high - low) if high > low else np.zeros(values.shape, np.float32)
