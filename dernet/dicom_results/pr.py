"""A Grayscale Softcopy Presentation State: the boxes and labels as graphic annotations over the original image."""

from __future__ import annotations

import highdicom as hd

from .context import ResultContext, copy_laterality, software_version

__all__ = ["presentation_state"]

LAYER = "SPINE_CAD_AI"  # graphic layer name (CS: upper case, <= 16 characters)

def presentation_state(ctx: ResultContext) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """Boxes (closed polylines) and "label confidence" texts on the source image; for a normal image, a text saying
    that no finding was detected, so every screened image gets its presentation state."""
    source, result = ctx.source, ctx.result
    pixel = hd.pr.AnnotationUnitsValues.PIXEL
    graphics, texts = [], []
    for finding, polygon in zip(result.findings, ctx.box_polygons(), strict=True):
        graphics.append(hd.pr.GraphicObject(hd.pr.GraphicTypeValues.POLYLINE, polygon, units=pixel))
        anchor = (float(polygon[0][0]), float(polygon[0][1]))
        texts.append(
            hd.pr.TextObject(f"{finding.label} {finding.confidence:.2f}", units=pixel, anchor_point=anchor,
                             anchor_point_visible=False)  # fmt: skip
        )
    verdict = "ABNORMAL" if result.abnormal else "NORMAL"
    summary = f"spine-cad: {verdict} p={result.probability:.3f} (threshold {result.threshold:.3f}), "
    summary += f"{len(result.findings)} finding(s)" if result.findings else "no finding detected"
    if result.image_level_summary():  # the top class or the likely lesion types, with such a head
        summary += f"; {result.image_level_summary()}"
    texts.append(hd.pr.TextObject(summary, units=pixel, anchor_point=(1.0, 1.0), anchor_point_visible=False,
                                  text_justification=hd.pr.TextJustificationValues.LEFT))  # fmt: skip
    layer = hd.pr.GraphicLayer(layer_name=LAYER, order=1, description="spine-cad AI findings")
    annotation = hd.pr.GraphicAnnotation(
        referenced_images=[source], graphic_layer=layer, graphic_objects=graphics or None, text_objects=texts
    )
    uids = ctx.uids("pr")
    series = ctx.settings.series_of("pr")
    inverse = str(source.get("PhotometricInterpretation", "")) == "MONOCHROME1"
    shape = hd.PresentationLUTShapeValues.INVERSE if inverse else hd.PresentationLUTShapeValues.IDENTITY
    state = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        series_instance_uid=uids.series,
        series_number=series.number,
        sop_instance_uid=uids.instance,
        instance_number=ctx.instance_number,
        manufacturer=ctx.settings.manufacturer,
        manufacturer_model_name=ctx.settings.model_name,
        software_versions=software_version(),
        device_serial_number=ctx.settings.device_serial_number,
        content_label="SPINE_CAD_AI",
        content_description="spine-cad AI findings, not for primary diagnosis",
        graphic_annotations=[annotation],
        graphic_layers=[layer],
        presentation_lut_transformation=hd.PresentationLUTTransformation(presentation_lut_shape=shape),
        institution_name=ctx.settings.institution_name,
        series_description=series.description,
    )
    copy_laterality(state, source)
    return state

