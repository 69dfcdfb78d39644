"""Image dimensions read from the first bytes of a PNG, JPEG (JPEG-LS) or JPEG 2000 stream, before any decoding.

The reader checks them against the pixel limit and the DICOM header before a decoder allocates anything. Written
here rather than asked of Pillow: Pillow answers only after its own process-wide decompression-bomb check (a
warning or an error past 89 or 179 megapixels), and pydicom's JPEG 2000 box walk loops forever on a zero-length box
(shared/reliability/reproducers/49_HANG_*). Every loop below advances and is bounded by the data's length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["StreamInfo", "j2k_info", "jpeg_info", "png_chunk_overrun", "png_info"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# SOF markers (frame headers) of JPEG baseline/extended/progressive/lossless and JPEG-LS (0xF7); not DHT/JPG/DAC
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_STANDALONE = {0x01, *range(0xD0, 0xD9)}  # TEM, RSTn, SOI, EOI: markers without a length


@dataclass(frozen=True)
class StreamInfo:
    """What a compressed stream says of the image it holds."""

    width: int
    height: int
    components: int
    precision: int  # bits per sample of the first component
    signed: bool = False


def png_info(data: bytes) -> StreamInfo | None:
    """From the IHDR chunk (which PNG requires first); None if the bytes are not a PNG with one."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    components = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 0)
    return StreamInfo(width, height, components, depth)


def png_chunk_overrun(data: bytes) -> str | None:
    """The first chunk whose declared length runs past the end of the data (e.g. 'IDAT of 2147486280 bytes at
    33'), or None. libpng (in OpenCV) sizes its read by that length before it finds the data missing: a flipped bit
    in one length costs seconds and gigabytes (shared/reliability's fuzzing found a 2.7 KB file doing that)."""
    offset = len(_PNG_SIGNATURE)
    while offset + 8 <= len(data):
        (length,), kind = struct.unpack(">I", data[offset : offset + 4]), data[offset + 4 : offset + 8]
        if offset + 12 + length > len(data):
            return f"{kind.decode('latin-1')!r} chunk of {length} bytes at byte {offset}"
        if kind == b"IEND":
            return None
        offset += 12 + length
    return None


def jpeg_info(data: bytes) -> StreamInfo | None:
    """From the first SOF segment (JPEG or JPEG-LS); None if no frame header is found before the scan data."""
    if not data.startswith(b"\xff\xd8"):
        return None
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _STANDALONE:
            offset += 2
            continue
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if length < 2:
            return None
        if marker in _SOF_MARKERS:
            segment = data[offset + 4 : offset + 2 + length]
            if len(segment) < 6:
                return None
            precision, height, width, components = struct.unpack(">BHHB", segment[:6])
            return StreamInfo(width, height, components, precision)
        if marker == 0xDA:  # start of scan before any frame header
            return None
        offset += 2 + length
    return None


def j2k_info(data: bytes) -> StreamInfo | None:
    """From the SIZ segment of a JPEG 2000 codestream, bare or inside a JP2 file's `jp2c` box; None if malformed."""
    offset = 0
    if data.startswith(_JP2_SIGNATURE):
        offset = _jp2c_offset(data)
        if offset is None:
            return None
    if data[offset : offset + 4] != b"\xff\x4f\xff\x51" or len(data) < offset + 6:
        return None  # SOC, then SIZ, which must come second (ISO/IEC 15444-1 A.5.1)
    length = int.from_bytes(data[offset + 4 : offset + 6], "big")
    siz = data[offset + 4 : offset + 4 + length]  # the segment only: the codestream runs to megabytes
    if length < 41 or len(siz) < length:
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", siz[4:20])
    components = int.from_bytes(siz[36:38], "big")
    if not 1 <= components <= 16384 or length < 38 + 3 * components or xsiz <= xosiz or ysiz <= yosiz:
        return None
    ssiz = siz[38]
    return StreamInfo(xsiz - xosiz, ysiz - yosiz, components, (ssiz & 0x7F) + 1, bool(ssiz & 0x80))


def _jp2c_offset(data: bytes) -> int | None:
    """Where the codestream starts inside a JP2 file: walk its boxes (each advances; a zero length means "to the end
    of the file", allowed only for the last box)."""
    offset = len(_JP2_SIGNATURE)
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        header = 8
        if length == 1:  # the real length follows as 8 bytes
            if offset + 16 > len(data):
                return None
            length, header = int.from_bytes(data[offset + 8 : offset + 16], "big"), 16
        elif length == 0:
            length = len(data) - offset
        if kind == b"jp2c":
            return offset + header
        if length < header:
            return None
        offset += length
    return None
