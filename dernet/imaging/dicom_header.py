"""The DICOM header the decoders may trust: every value the reader uses, checked before any pixel is decoded.

A file from a PACS or an upload may carry anything: text where numbers belong, several values where one is
expected, a geometry its codestream contradicts, a deflated dataset that inflates to gigabytes. Each becomes an
:class:`ImageReadError` with a kind here, before decoding, and a header larger than the pixel limit is refused
from its numbers alone.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from .errors import ImageReadError, rejecting_failures
from .headers import StreamInfo, j2k_info, jpeg_info

__all__ = ["DicomHeader", "parse_dicom"]

_MONOCHROME = {"MONOCHROME1", "MONOCHROME2"}
_COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT"}
_PALETTE_TAGS = tuple(f"{c}PaletteColorLookupTableDescriptor" for c in ("Red", "Green", "Blue"))
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_INFLATE_CHUNK = 1 << 20


@dataclass(frozen=True)
class DicomHeader:
    """The validated values: one integer or string each, in range and consistent with one another."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    transfer_syntax: str
    modality: str | None


def parse_dicom(data: bytes, name: str, max_pixels: int) -> tuple[Dataset, DicomHeader]:
    """The dataset (pixels not decoded) and its validated header; :class:`ImageReadError` for anything unusable."""
    _check_inflated_size(data, name, 4 * max_pixels + (16 << 20))
    with rejecting_failures(name, "not a readable DICOM file"):
        ds = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in ds:
        reason = f"DICOM without pixel data ({_sop_class(ds)}); an image is expected"
        raise ImageReadError(name, reason, "no_pixel_data")
    header = _header(ds, name, max_pixels)
    _check_pixel_data(ds, header, name)
    return ds, header


def _header(ds: Dataset, name: str, max_pixels: int) -> DicomHeader:
    frames = _integer(ds, "NumberOfFrames", name, default=1, low=1)
    if frames > 1:
        raise ImageReadError(
            name, f"multi-frame DICOM ({frames} frames); one radiograph per file is expected", "multi_frame"
        )
    rows = _integer(ds, "Rows", name, low=1, high=65535)
    columns = _integer(ds, "Columns", name, low=1, high=65535)
    if rows * columns > max_pixels:
        raise ImageReadError(
            name, f"{columns}x{rows} px is over the limit of {max_pixels / 1e6:g} megapixels", "too_large"
        )
    samples = _integer(ds, "SamplesPerPixel", name, default=1, low=1, high=4)
    bits_allocated = _integer(ds, "BitsAllocated", name)
    if bits_allocated not in (1, 8, 16, 32):
        raise ImageReadError(name, f"BitsAllocated {bits_allocated} is not 1, 8, 16 or 32", "unsupported")
    bits_stored = _integer(ds, "BitsStored", name, low=1, high=bits_allocated)
    signed = bool(_integer(ds, "PixelRepresentation", name, default=0, low=0, high=1))
    photometric = _text(ds, "PhotometricInterpretation", name).upper()
    _check_photometric(ds, photometric, samples, name)
    return DicomHeader(
        rows, columns, samples, bits_allocated, bits_stored, signed, photometric, _transfer_syntax(ds, name),
        _modality(ds),
    )  # fmt: skip


def _integer(ds: Dataset, keyword: str, name: str, default: int | None = None, low: int = 0, high: int = 2**31) -> int:
    """One integer value of ``keyword``; absent or empty gives ``default`` (an error when there is none)."""
    with rejecting_failures(name, f"unreadable {keyword}"):
        value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise ImageReadError(name, f"DICOM without {keyword}; the image cannot be decoded", "corrupt")
        return default
    if isinstance(value, (MultiValue, list, tuple)):
        raise ImageReadError(name, f"{keyword} holds {len(value)} values; one is expected", "corrupt")
    try:
        number = int(value)
        exact = number == float(value)
    except (TypeError, ValueError, OverflowError):
        raise ImageReadError(name, f"{keyword} {_shown(value)} is not a number", "corrupt") from None
    if not exact or not low <= number <= high:
        raise ImageReadError(name, f"{keyword} {_shown(value)} is not an integer in {low}..{high}", "corrupt")
    return number


def _text(ds: Dataset, keyword: str, name: str) -> str:
    with rejecting_failures(name, f"unreadable {keyword}"):
        value = ds.get(keyword, "")
    if isinstance(value, (MultiValue, list, tuple)):
        raise ImageReadError(name, f"{keyword} holds {len(value)} values; one is expected", "corrupt")
    return str(value).strip()


def _check_photometric(ds: Dataset, photometric: str, samples: int, name: str) -> None:
    if photometric in _MONOCHROME | {"PALETTE COLOR"}:
        expected = 1
    elif photometric in _COLOUR:
        expected = 3
    else:
        shown = _shown(photometric) if photometric else "(none)"
        raise ImageReadError(name, f"unsupported photometric interpretation {shown}", "unsupported")
    if samples != expected:
        raise ImageReadError(
            name, f"{photometric} with SamplesPerPixel {samples}; {expected} is what it implies", "corrupt"
        )
    if photometric == "PALETTE COLOR" and not all(tag in ds for tag in _PALETTE_TAGS):
        raise ImageReadError(name, "PALETTE COLOR without its palette lookup tables", "corrupt")


def _transfer_syntax(ds: Dataset, name: str) -> str:
    uid = getattr(ds, "file_meta", None) and ds.file_meta.get("TransferSyntaxUID")
    if not uid:
        raise ImageReadError(name, "DICOM without a transfer syntax; its pixel encoding is unknown", "corrupt")
    try:
        decodable = get_decoder(uid).is_available
    except (NotImplementedError, ValueError, TypeError):
        decodable = False
    if not decodable:
        raise ImageReadError(name, f"transfer syntax {_shown(str(uid))} cannot be decoded here", "unsupported")
    return str(uid)


def _sop_class(ds: Dataset) -> str:
    try:
        return str(getattr(ds.get("SOPClassUID"), "name", None) or "unknown SOP class")[:80]
    except Exception:  # an unreadable SOP Class UID: the message only loses a detail
        return "unknown SOP class"


def _modality(ds: Dataset) -> str | None:
    try:
        value = ds.get("Modality")
    except Exception:  # an unreadable Modality is as good as none: the release itself has none
        return None
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    return str(value).strip().upper()[:16] or None if isinstance(value, str) else None


def _check_pixel_data(ds: Dataset, header: DicomHeader, name: str) -> None:
    """Native pixel data must be as long as the header says; a compressed frame's own header must agree with it."""
    with rejecting_failures(name, "unreadable pixel data"):
        pixel_data = ds.PixelData
    if not isinstance(pixel_data, (bytes, bytearray)):
        raise ImageReadError(name, "pixel data is not a byte string", "corrupt")
    uid = header.transfer_syntax
    if get_decoder(uid).is_native:
        needed = (header.rows * header.columns * header.samples * header.bits_allocated + 7) // 8
        if len(pixel_data) < needed:
            raise ImageReadError(
                name, f"truncated pixel data ({len(pixel_data)} bytes; the header needs {needed})", "corrupt"
            )
        return
    parse = j2k_info if uid in JPEG2000TransferSyntaxes else None
    if uid in JPEGTransferSyntaxes or uid in JPEGLSTransferSyntaxes:
        parse = jpeg_info
    if parse is None:
        return  # RLE: its segments decode to Rows x Columns, already bounded
    with rejecting_failures(name, "unreadable compressed frame"):
        frame = get_frame(pixel_data, 0, number_of_frames=1)
    info = parse(bytes(frame))
    if info is None:
        raise ImageReadError(name, "the compressed frame has no readable image header", "corrupt")
    _check_stream(info, header, name)


def _check_stream(info: StreamInfo, header: DicomHeader, name: str) -> None:
    if (info.width, info.height) != (header.columns, header.rows) or info.components != header.samples:
        raise ImageReadError(
            name,
            f"the compressed frame holds {info.width}x{info.height} px x {info.components} but the header says "
            f"{header.columns}x{header.rows} px x {header.samples}",
            "corrupt",
        )


def _check_inflated_size(data: bytes, name: str, limit: int) -> None:
    """A deflated dataset is inflated whole by the parser: count what it would inflate to first, keeping nothing."""
    start = _file_meta_end(data)
    if start is None or DeflatedExplicitVRLittleEndian.encode() not in data[:start]:
        return
    inflater, pending, total = zlib.decompressobj(-zlib.MAX_WBITS), data[start:], 0
    with rejecting_failures(name, "corrupt deflated dataset"):
        while not inflater.eof:
            out = inflater.decompress(pending, _INFLATE_CHUNK)  # at most a chunk out, the rest of the input kept
            total += len(out)
            if total > limit:
                raise ImageReadError(name, f"the deflated dataset inflates past {limit >> 20} MB", "too_large")
            if not out and inflater.unconsumed_tail == pending:
                break  # no progress: a truncated stream (the parser reports it)
            pending = inflater.unconsumed_tail


def _file_meta_end(data: bytes) -> int | None:
    """Where the file meta group (explicit VR little endian, group 0002, after the preamble) ends."""
    if data[128:132] != b"DICM":
        return None
    offset = 132
    while offset + 8 <= len(data) and data[offset : offset + 2] == b"\x02\x00":
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            if offset + 12 > len(data):
                return None
            length, offset = struct.unpack("<I", data[offset + 8 : offset + 12])[0], offset + 12
        else:
            length, offset = struct.unpack("<H", data[offset + 6 : offset + 8])[0], offset + 8
        offset += length
    return offset


def _shown(value: Any) -> str:
    """A value from the file as a message may quote it: short, one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
