"""DICOMweb STOW-RS for the node (PS3.18 10.5): a ``multipart/related; type="application/dicom"`` body in, each
instance into the node's spool as a C-STORE would put it, the standard response (DICOM JSON) out."""

from __future__ import annotations

import email.parser
import email.policy
import io
import logging
from collections.abc import Callable

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = ["StowError", "ingest_parts", "instance_identity", "parse_multipart_related", "stow_response"]

LOG = logging.getLogger("dernet.node")

PROCESSING_FAILURE = 0x0110  # PS3.18 Table 10.5.3-1 failure reasons
OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000


class StowError(ValueError):
    """A request body that is not ``multipart/related`` with DICOM parts; the message says what was expected."""


def parse_multipart_related(content_type: str, body: bytes) -> list[bytes]:
    """The parts of a ``multipart/related`` body (the standard library's MIME parser, on bytes)."""
    if not content_type.lower().startswith("multipart/related") or "boundary=" not in content_type.lower():
        raise StowError('expected Content-Type multipart/related; type="application/dicom"; boundary=...')
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise StowError("the body holds no MIME parts; each instance goes in a part of type application/dicom")
    return [part.get_payload(decode=True) or b"" for part in message.iter_parts()]


def instance_identity(data: bytes) -> tuple[str, str]:
    """(SOP Class UID, SOP Instance UID) of a Part 10 instance; InvalidDicomError when it is none."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as err:
        raise InvalidDicomError(f"not a DICOM Part 10 instance ({err})") from None
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else "") or "")
    sop_instance = str(ds.get("SOPInstanceUID") or (meta.get("MediaStorageSOPInstanceUID") if meta else "") or "")
    if not sop_instance:
        raise InvalidDicomError("no SOP Instance UID")
    return sop_class, sop_instance


def ingest_parts(
    ingest: Callable[[str, bytes], bool], parts: list[bytes]
) -> tuple[list[tuple[str, str]], list[tuple[str, str, int]]]:
    """Each part into the node (``ingest``: stored durably, then queued); a part that is no DICOM instance, or that
    cannot be stored, is a failure with its reason code, and the others go on. (stored, failed)"""
    stored, failed = [], []
    for data in parts:
        try:
            sop_class, sop_instance = instance_identity(data)
        except InvalidDicomError:
            failed.append(("", "", CANNOT_UNDERSTAND))
            continue
        try:
            ingest(sop_instance, data)
        except OSError as err:
            LOG.error("STOW-RS: could not store %s (%s)", sop_instance, err.strerror or err)
            failed.append((sop_class, sop_instance, OUT_OF_RESOURCES))
            continue
        stored.append((sop_class, sop_instance))
    return stored, failed


def stow_response(stored: list[tuple[str, str]], failed: list[tuple[str, str, int]]) -> dict:
    """The Store Instances Response Module as DICOM JSON: ReferencedSOPSequence and FailedSOPSequence."""
    response = Dataset()
    response.ReferencedSOPSequence = [_reference(c, i) for c, i in stored]
    failures = []
    for sop_class, sop_instance, reason in failed:
        item = _reference(sop_class, sop_instance)
        item.FailureReason = reason
        failures.append(item)
    if failures:
        response.FailedSOPSequence = failures
    return response.to_json_dict()


def _reference(sop_class: str, sop_instance: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class or "1.2.840.10008.5.1.4.1.1.7"  # unknown: Secondary Capture's
    item.ReferencedSOPInstanceUID = sop_instance or "0"
    return item
