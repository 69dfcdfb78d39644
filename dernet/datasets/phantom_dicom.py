"""Encode a phantom as DICOM the way real archives vary: photometric, bit depth, rescale and window tags,
transfer syntax (uncompressed, JPEG 2000 Lossless, RLE)."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from ..fileio import write_bytes_atomic

__all__ = ["RELEASE_LIKE", "Encoding", "encoding_for", "make_uid", "write_phantom_dicom"]

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
SYNTAXES = {"explicit": "1.2.840.10008.1.2.1", "j2k": JPEG2000Lossless, "rle": RLELossless}


@dataclass(frozen=True)
class Encoding:
    photometric: str = "MONOCHROME2"
    bits_stored: int = 12
    rescale: bool = False  # RescaleSlope 2 / RescaleIntercept -1024 instead of no rescale tags
    window: bool = True  # WindowCenter/WindowWidth present
    syntax: str = "explicit"  # explicit | j2k | rle
    modality: bool = True  # Modality DX present (the VinDr release has none)


RELEASE_LIKE = Encoding(photometric="MONOCHROME2", bits_stored=12, window=True, syntax="j2k", modality=False)


def encoding_for(index: int) -> Encoding:
    """A deterministic mix that covers every variant even in a small phantom (cycles of co-prime lengths)."""
    return Encoding(
        photometric="MONOCHROME1" if index % 3 == 1 else "MONOCHROME2",
        bits_stored=16 if index % 4 == 3 else 12,
        rescale=index % 6 == 2,
        window=index % 7 not in (3, 6),
        syntax=("explicit", "j2k", "explicit", "rle", "j2k")[index % 5],
        modality=index % 2 == 0,
    )


def write_phantom_dicom(
    path: Path,
    image01: np.ndarray,
    encoding: Encoding,
    uids: dict[str, str],
    patient: str,
    rng: np.random.Generator,
) -> None:
    """Write ``image01`` (float in [0, 1], bone bright) as a single-frame DX DICOM file."""
    stored, window = _stored_values(image01, encoding, rng)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = SYNTAXES["explicit"]
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = uids["image_id"]
    ds.StudyInstanceUID = uids["study_id"]
    ds.SeriesInstanceUID = uids["series_id"]
    # Fake identifiers, so tests can prove that no output ever carries them.
    ds.PatientName = f"PHANTOM^{patient}"
    ds.PatientID = f"PID-{patient}"
    ds.PatientBirthDate = "19700101"
    if encoding.modality:
        ds.Modality = "DX"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = encoding.photometric
    ds.BitsAllocated = 16
    ds.BitsStored = encoding.bits_stored
    ds.HighBit = encoding.bits_stored - 1
    ds.PixelRepresentation = 0
    if encoding.rescale:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 2, -1024, "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.tobytes()
    if encoding.syntax != "explicit":
        # pylibjpeg's encoders (openjpeg; pylibjpeg-rle, ten times faster than pydicom's pure-Python RLE)
        ds.compress(SYNTAXES[encoding.syntax], encoding_plugin="pylibjpeg", generate_instance_uid=False)
    write_bytes_atomic(path, _to_bytes(ds))


def _stored_values(
    image01: np.ndarray, encoding: Encoding, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Detector counts (12 or 16 bit) in the modality-LUT domain, then stored values; window on counts."""
    top = 2**encoding.bits_stored - 1
    lo, hi = top * rng.uniform(0.02, 0.1), top * rng.uniform(0.75, 0.95)
    counts = lo + image01 * (hi - lo)  # MONOCHROME2 counts: bone bright
    p_lo, p_hi = np.percentile(counts, (0.5, 99.5))
    centre, width = (p_lo + p_hi) / 2, (p_hi - p_lo) * 1.1
    if encoding.photometric == "MONOCHROME1":
        counts, centre = top - counts, top - centre
    if encoding.rescale:  # stored * 2 - 1024 = counts
        counts = (counts + 1024) / 2
    stored = np.clip(np.round(counts), 0, top).astype(np.uint16)
    window = (round(float(centre), 1), round(float(width), 1)) if encoding.window else None
    return stored, window


def _to_bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_uid(*parts: object) -> str:
    """A valid, deterministic DICOM UID from the given parts."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])
