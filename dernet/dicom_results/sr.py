"""The TID 1500 Measurement Report (Comprehensive SR): one planar ROI group per box, one image-level evaluation."""

from __future__ import annotations

import copy

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .codes import (
    CODING_SCHEME,
    CODING_SCHEME_NAME,
    DETECTION_CONFIDENCE,
    GATE_MODE,
    LESION_TYPE_THRESHOLD,
    MODE_CODES,
    THRESHOLD,
    finding_code,
)
from .context import ResultContext, software_version
from .uids import device_uid

__all__ = ["structured_report"]

UNITLESS = codes.UCUM.NoUnits  # probabilities and confidences, 0..1
PROJECTION_MODALITIES = {"CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"}  # highdicom's list


def structured_report(ctx: ResultContext) -> hd.sr.ComprehensiveSR:
    """The SR of one screened image: every box with its finding type and confidence, abnormal or normal with the
    probability, threshold and gate mode (a normal image's SR says so: no ROI groups), and with a classifier head
    the top class (multiclass) or one image-level group per lesion type that reaches its threshold."""
    settings, source, result = ctx.settings, ctx.source, ctx.result
    uids = ctx.uids("sr")
    algorithm = hd.sr.AlgorithmIdentification(
        name=settings.model_name, version=software_version(), parameters=ctx.algorithm_parameters()
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=device_uid(settings.model_name, ctx.model_hashes),
        name=settings.model_name,
        manufacturer_name=settings.manufacturer,
        model_name=settings.model_name,
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )
    groups: list = [_image_evaluation(ctx, algorithm, uids.instance)]
    groups += _image_level_classes(ctx, algorithm, uids.instance)
    for index, (finding, polygon) in enumerate(zip(result.findings, ctx.box_polygons(), strict=True), start=1):
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=polygon,
            source_image=hd.sr.SourceImageForRegion.from_source_image(source),
        )
        groups.append(
            hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=_tracking(uids.instance, f"Finding {index}: {finding.label}"),
                referenced_region=region,
                finding_type=finding_code(finding.label),
                algorithm_id=algorithm,
                measurements=[hd.sr.Measurement(DETECTION_CONFIDENCE, finding.confidence, UNITLESS)],
            )
        )
    report = hd.sr.MeasurementReport(
        observation_context=context,
        procedure_reported=codes.SCT.PlainRadiography,
        imaging_measurements=groups,
        referenced_images=[_library_reference(source)],  # the Image Library
    )
    series = settings.series_of("sr")
    sr = hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=uids.series,
        series_number=series.number,
        sop_instance_uid=uids.instance,
        instance_number=ctx.instance_number,
        manufacturer=settings.manufacturer,
        is_complete=True,
        is_final=False,  # a machine's findings, not verified by a person
        is_verified=False,
        institution_name=settings.institution_name,
        series_description=series.description,
        manufacturer_model_name=settings.model_name,
        software_versions=software_version(),
        coding_schemes=[  # the private scheme, named (PS3.3 C.12.1.1.4)
            CodingSchemeIdentificationItem(
                designator=CODING_SCHEME, name=CODING_SCHEME_NAME, responsible_organization=settings.manufacturer
            )
        ],
    )
    return sr


def _image_evaluation(
    ctx: ResultContext, algorithm: hd.sr.AlgorithmIdentification, instance_uid: str
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    result = ctx.result
    verdict = codes.SCT.Abnormal if result.abnormal else codes.SCT.Normal
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(instance_uid, "Image-level screening"),
        finding_type=verdict,  # TID 1501's "Finding" row: abnormal or normal
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(codes.DCM.Probability, float(result.probability), UNITLESS),
            hd.sr.Measurement(THRESHOLD, float(result.threshold), UNITLESS),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(GATE_MODE, MODE_CODES[result.mode]),
        ],
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ctx.source)],
    )


def _image_level_classes(
    ctx: ResultContext, algorithm: hd.sr.AlgorithmIdentification, instance_uid: str
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """Image-level findings from the classifier's heads: a multiclass vote's top class with its probability, and
    each lesion type whose probability reaches its threshold (with both): what the image likely shows, box or no
    box."""
    rows = []  # (identifier, label, measurements)
    if ctx.result.top_class is not None:
        top = ctx.result.top_class
        rows.append(("Image-level class", top["label"], [(codes.DCM.Probability, top["probability"])]))
    for row in ctx.result.lesion_types or []:
        if row["likely"]:
            measured = [(codes.DCM.Probability, row["probability"]), (LESION_TYPE_THRESHOLD, row["threshold"])]
            rows.append(("Image-level lesion type", row["label"], measured))
    return [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=_tracking(instance_uid, f"{identifier}: {label}"),
            finding_type=finding_code(label),
            algorithm_id=algorithm,
            measurements=[hd.sr.Measurement(name, float(value), UNITLESS) for name, value in measured],
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ctx.source)],
        )
        for identifier, label, measured in rows
    ]


def _library_reference(source):
    """The source as highdicom's Image Library should describe it. For a projection radiograph highdicom adds the
    patient orientation and imager pixel spacing descriptors and fails without them; many radiographs (the
    VinDr-SpineXR release among them) have neither, so such a source is described by the descriptors every image
    has (SOP class, size). The modality written comes from the SOP class either way."""
    has_projection_descriptors = len(source.get("PatientOrientation") or ()) == 2 and "ImagerPixelSpacing" in source
    if str(source.get("Modality")) not in PROJECTION_MODALITIES or has_projection_descriptors:
        return source
    reference = copy.copy(source)
    reference.Modality = "OT"  # steers highdicom's choice of descriptors only; never written to a file
    return reference


def _tracking(instance_uid: str, identifier: str) -> hd.sr.TrackingIdentifier:
    """A tracking identifier whose UID is derived from the SR's own, so re-screening gives the same UIDs."""
    return hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=[instance_uid, identifier]), identifier=identifier)

