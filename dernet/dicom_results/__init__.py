"""Results as DICOM, for a PACS: a TID 1500 Structured Report with the boxes, a Secondary Capture of the overlay and
a Grayscale Softcopy Presentation State, filed into the source's study (highdicom; the ``dicom`` extra)."""

from __future__ import annotations

from .results import DicomResults, build_results, read_source_header, write_results
from .settings import KINDS, DicomResultSettings, load_settings

__all__ = ["KINDS", "DicomResultSettings", "DicomResults", "build_results", "load_settings", "read_source_header",
           "write_results"]  # fmt: skip
