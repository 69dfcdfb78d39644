"""The overlay (boxes and decision banner) as a Secondary Capture in the source's study: every PACS shows it."""

from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
from pydicom.uid import ExplicitVRLittleEndian

from .context import ResultContext, copy_laterality

__all__ = ["secondary_capture"]

# A placeholder highdicom needs to build a PATIENT-coordinate SC; replaced by the source's orientation, or emptied
# (type 2) when the source has none, so the object never claims an orientation nobody measured.
_PLACEHOLDER_ORIENTATION = ("P", "F")


def secondary_capture(ctx: ResultContext, overlay_bgr: np.ndarray) -> hd.sc.SCImage:
    """The overlay image (BGR, as the gate renders it) as an RGB Secondary Capture, derived from the source and
    marked not for primary diagnosis in its series description; burned-in annotation says it carries text."""
    uids = ctx.uids("sc")
    series = ctx.settings.series_of("sc")
    orientation = _orientation(ctx.source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ctx.source,
        pixel_array=np.ascontiguousarray(cv2.cvtColor(overlay_bgr, cv2.COLOR_BGR2RGB)),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        patient_orientation=orientation or _PLACEHOLDER_ORIENTATION,
        series_instance_uid=uids.series,
        series_number=series.number,
        sop_instance_uid=uids.instance,
        instance_number=ctx.instance_number,
        manufacturer=ctx.settings.manufacturer,
        series_description=series.description,
        manufacturer_model_name=ctx.settings.model_name,
        institution_name=ctx.settings.institution_name,
        transfer_syntax_uid=ExplicitVRLittleEndian,
    )
    if orientation is None:
        sc.PatientOrientation = None
    copy_laterality(sc, ctx.source)
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.DerivationDescription = "spine-cad AI overlay: detector boxes and decision banner; not for primary diagnosis"
    return sc


def _orientation(source) -> tuple[str, str] | None:
    """The source's Patient Orientation when it holds two valid biped values (the overlay keeps rows and columns)."""
    value = source.get("PatientOrientation")
    if value is None or len(value) != 2:
        return None
    try:
        return tuple(hd.PatientOrientationValuesBiped(v).value for v in value)  # type: ignore[return-value]
    except ValueError:
        return None
