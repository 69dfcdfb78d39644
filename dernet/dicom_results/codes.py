"""The coded concepts the DICOM results use: one table, here and in docs/deployment.md.

SNOMED CT (SCT) and DICOM (DCM) codes are used where pydicom's code dictionary (DICOM PS3.16) holds a concept that
fits; it has none for osteophytes, spondylolisthesis, foraminal stenosis, disc space narrowing, vertebral collapse or
a detector confidence, and we could not cite an SCT code for them from a source we looked up, so they carry codes of
the private scheme ``99SPINECAD``, declared in every SR (CodingSchemeIdentificationSequence).
"""

from __future__ import annotations

import re

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

__all__ = [
    "CODING_SCHEME",
    "CODING_SCHEME_NAME",
    "DETECTION_CONFIDENCE",
    "FINDING_CODES",
    "GATE_MODE",
    "LESION_TYPE_THRESHOLD",
    "MODE_CODES",
    "THRESHOLD",
    "finding_code",
]

CODING_SCHEME = "99SPINECAD"  # private: "99" prefix, PS3.3 8.2
CODING_SCHEME_NAME = "spine-cad private codes"


def _private(value: str, meaning: str) -> Code:
    return Code(value, CODING_SCHEME, meaning)


# The detector's class names (VinDr-SpineXR, release spelling) -> finding type.
FINDING_CODES: dict[str, Code] = {
    "Osteophytes": _private("OSTEOPHYTE", "Osteophyte"),
    "Surgical implant": codes.SCT.Implant,  # SCT 40388003
    "Spondylolysthesis": _private("SPONDYLOLISTHESIS", "Spondylolisthesis"),
    "Foraminal stenosis": _private("FORAMINAL-STENOSIS", "Foraminal stenosis"),
    "Disc space narrowing": _private("DISC-NARROWING", "Disc space narrowing"),
    "Vertebral collapse": _private("VERT-COLLAPSE", "Vertebral collapse"),
    "Other lesions": _private("OTHER-LESION", "Other spine lesion"),
}
DETECTION_CONFIDENCE = _private("DET-CONFIDENCE", "Detection confidence")  # the detector's box score, 0..1
THRESHOLD = _private("THRESHOLD", "Abnormality decision threshold")  # the manifest's validation-chosen threshold
LESION_TYPE_THRESHOLD = _private("TYPE-THRESHOLD", "Lesion type decision threshold")  # the head's per-class one
GATE_MODE = _private("GATE-MODE", "Screening gate mode")
MODE_CODES: dict[str, Code] = {
    "gate": _private("MODE-GATE", "Detect only when abnormal"),
    "fusion": _private("MODE-FUSION", "Always detect, confident boxes when normal"),
    "all": _private("MODE-ALL", "Always detect, all boxes"),
}


_BY_LOWER = {name.lower(): code for name, code in FINDING_CODES.items()} | {"normal": codes.SCT.Normal}


def finding_code(label: str) -> Code:
    """The finding type of a detector or classifier class, whatever its case ("surgical implant" from a
    folder-per-class dataset too); a class outside the table (a custom model) gets a private code made from its name."""
    if label.lower() in _BY_LOWER:
        return _BY_LOWER[label.lower()]
    value = re.sub(r"[^A-Z0-9]+", "-", label.upper()).strip("-")[:16] or "LESION"
    return _private(value, label[:64])
