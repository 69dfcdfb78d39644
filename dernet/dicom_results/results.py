"""Build the three DICOM result objects of a screened image, or say in one note why there are none."""

from __future__ import annotations

import io
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from ..deploy.screening import Screening
from ..fileio import write_bytes_atomic
from ..inputs import display_name
from .context import ResultContext
from .pr import presentation_state
from .sc import secondary_capture
from .settings import KINDS, DicomResultSettings
from .sr import structured_report

__all__ = ["DicomResults", "build_results", "read_source_header", "write_results"]

SUFFIXES = {"sr": ".sr.dcm", "sc": ".sc.dcm", "pr": ".pr.dcm"}
MODALITY_OF_SOP_CLASS = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",  # Digital X-Ray Image Storage - For Processing
}
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip
_IDENTITY = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns")


@dataclass
class DicomResults:
    """The encoded objects (kind -> Part 10 bytes), or none with a ``note`` saying why; a bug met while building
    them keeps its traceback for the front end's log (never for the report)."""

    objects: dict[str, bytes] = field(default_factory=dict)
    note: str | None = None
    error_traceback: str | None = None


def read_source_header(source: Path | bytes) -> Dataset:
    """The source's header without pixel data (the gate has already decoded the pixels once)."""
    handle: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    return pydicom.dcmread(handle, stop_before_pixels=True, force=False)


def build_results(
    source: Path | bytes,
    result: Screening,
    overlay: np.ndarray | None,
    model_hashes: dict[str, str],
    conf: float,
    settings: DicomResultSettings,
) -> DicomResults:
    """SR, SC and PR for a screened DICOM input; for anything else (a PNG, a rejected input, a header without the
    identifiers a PACS files by) no objects and one note. Never raises for an input."""
    if result.status != "ok" or result.meta is None or overlay is None:
        return DicomResults(note="not screened, so no DICOM results")
    if result.meta.format != "dicom":
        return DicomResults(note=f"{result.meta.format.upper()} input: no patient or study to file results under, "
                                 "so no DICOM results")  # fmt: skip
    try:
        header = read_source_header(source)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        return DicomResults(note=f"the source's header could not be read again ({err}), so no DICOM results")
    missing = [name for name in _IDENTITY if not str(header.get(name, "") or "").strip()]
    if missing:
        return DicomResults(note=f"the source has no {', '.join(missing)}: no DICOM results")
    _fill_modality(header)
    _fill_type2(header)
    ctx = ResultContext(header, result, dict(model_hashes), float(conf), settings)
    try:
        built = {"sr": structured_report(ctx), "sc": secondary_capture(ctx, overlay), "pr": presentation_state(ctx)}
        return DicomResults(objects={kind: _encode(built[kind]) for kind in KINDS})
    except Exception as err:  # noqa: BLE001 - a source highdicom refuses, or a bug: this input's note, not a stop
        return DicomResults(note=f"DICOM results could not be built ({type(err).__name__})",
                            error_traceback=_stack_only(err))  # fmt: skip


def write_results(results: DicomResults, target: Path) -> dict[str, Any]:
    """Write ``<target>.sr.dcm`` etc. atomically (stale ones from an earlier run removed) and return the report's
    ``dicom`` field: each kind's path (or null) and the note."""
    field_: dict[str, Any] = {}
    for kind in KINDS:
        path = target.with_name(target.name + SUFFIXES[kind])
        if kind in results.objects:
            write_bytes_atomic(path, results.objects[kind])
            field_[kind] = display_name(path)
        else:
            path.unlink(missing_ok=True)
            field_[kind] = None
    field_["note"] = results.note
    return field_


def _fill_modality(header: Dataset) -> None:
    """Give a header without Modality (type 1, yet the VinDr-SpineXR release leaves it out) the one its SOP class
    implies, as highdicom requires one of every source image; "OT" (other) when the class implies none."""
    if str(header.get("Modality", "") or "").strip():
        return
    header.Modality = MODALITY_OF_SOP_CLASS.get(str(header.SOPClassUID), "OT")


def _fill_type2(header: Dataset) -> None:
    """Patient and study attributes the results must carry (type 2) but the source left out: present and empty,
    which DICOM reads as unknown (highdicom copies them from the source and needs each one there)."""
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in header:
            setattr(header, keyword, None)


def _stack_only(err: BaseException) -> str:
    """The traceback without the exception's message: a message can quote a header value (a patient's name), and
    logs carry no patient identifiers."""
    stack = "".join(traceback.format_tb(err.__traceback__))
    name = f"{type(err).__module__}.{type(err).__qualname__}"
    return f"Traceback (most recent call last):\n{stack}{name} (message withheld: it may quote patient data)\n"


def _encode(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
