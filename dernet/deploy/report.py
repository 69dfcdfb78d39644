"""A screening result as the report JSON (schema in ARCHITECTURE.md), the overlay PNG and the folder summary."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..fileio import write_json_atomic, write_png_atomic, write_text_atomic
from ..imaging import apply_clahe
from ..inputs import display_name
from .screening import Screening

__all__ = [
    "blend_heatmap",
    "build_report",
    "render_overlay",
    "summary_line",
    "write_outputs",
    "write_studies_csv",
    "write_summary_csv",
]

# One colour per class id (BGR), distinguishable on a grey radiograph.
CLASS_COLOURS = (
    (0, 200, 255),
    (255, 120, 0),
    (60, 220, 60),
    (220, 0, 220),
    (0, 80, 255),
    (255, 255, 0),
    (180, 180, 255),
)
OVERLAY_MIN_LONG_SIDE = 800  # small demo images are enlarged so labels stay legible
HEATMAP_WEIGHT = 0.45  # share of the heatmap's colour in a blended pixel; the anatomy stays readable
SUMMARY_COLUMNS = ("input", "status", "reason", "reason_code", "abnormal_probability", "threshold", "abnormal",
                   "mode", "findings", "top_finding", "top_confidence", "total_ms", "report")  # fmt: skip


def build_report(
    result: Screening,
    overlay: str | None,
    model_hashes: dict[str, str],
    heatmap: str | None = None,
    dicom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict: only the fields the contract names (no patient identifiers exist in it). ``heatmap`` is the
    path of the Grad-CAM overlay when the gate ran with ``--explain``; ``image.notes`` say what the reader converted;
    ``dicom`` (only when DICOM results were asked for) the paths of the SR, SC and PR, or a note why there are none."""
    meta = result.meta
    image = None
    if meta is not None:
        image = {"width": meta.width, "height": meta.height, "modality": meta.modality,
                 "photometric": meta.photometric, "notes": list(meta.notes)}  # fmt: skip
    report = {
        "input": result.input,
        "status": result.status,
        "reason": result.reason,
        "reason_code": result.reason_code,
        "overlay": overlay,
        "heatmap": heatmap,
        "image": image,
        "abnormal_probability": None if result.probability is None else round(result.probability, 6),
        "threshold": result.threshold,
        "abnormal": result.abnormal,
        "mode": result.mode,
        "findings": [f.as_dict() for f in result.findings],
        "timings_ms": result.timings_ms,
        "models": dict(model_hashes),
        "runtime": dict(result.runtime),
    }
    if result.lesion_types is not None:  # only from an export with a lesion-type head
        report["lesion_types"] = result.lesion_types
    if result.class_probabilities is not None:  # only from a multiclass (folder-per-class) export
        report["class_probabilities"] = {k: round(v, 6) for k, v in result.class_probabilities.items()}
        report["top_class"] = result.top_class
    if dicom is not None:
        report["dicom"] = dicom
    return report


def render_overlay(result: Screening, heatmap: np.ndarray | None = None) -> np.ndarray | None:
    """The preprocessed radiograph (windowed + CLAHE) with class-coloured boxes and a decision banner on top;
    with ``heatmap`` ([0, 1], the original image's geometry at any size) blended in under the boxes."""
    if result.windowed is None or result.meta is None or result.probability is None:
        return None
    image = apply_clahe(result.windowed)
    scale = max(1.0, OVERLAY_MIN_LONG_SIDE / max(image.shape))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    if heatmap is not None:
        canvas = blend_heatmap(image, heatmap)
    else:
        canvas = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = canvas.shape[:2]
    sx, sy = w / result.meta.width, h / result.meta.height
    thickness = max(2, round(max(h, w) / 500))
    font_scale = max(0.5, max(h, w) / 1600)
    for finding in sorted(result.findings, key=lambda f: f.confidence):  # most confident drawn last, on top
        colour = CLASS_COLOURS[finding.class_id % len(CLASS_COLOURS)]
        x1, y1, x2, y2 = finding.box
        p1, p2 = (round(x1 * sx), round(y1 * sy)), (round(x2 * sx), round(y2 * sy))
        cv2.rectangle(canvas, p1, p2, colour, thickness, cv2.LINE_AA)
        _label(canvas, f"{finding.label} {finding.confidence:.2f}", p1, colour, font_scale)
    return np.vstack([_banner(result, w, font_scale), canvas])


def blend_heatmap(grey_or_bgr: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """A BGR uint8 image with ``heatmap`` (values in [0, 1], any size: resized to the image) blended in as OpenCV's
    jet colormap. Grad-CAM maps are drawn this way by the gate, the web page and `python -m dernet.explain` alike."""
    image = grey_or_bgr if grey_or_bgr.ndim == 3 else cv2.cvtColor(grey_or_bgr, cv2.COLOR_GRAY2BGR)
    if heatmap.shape != image.shape[:2]:
        heatmap = cv2.resize(heatmap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(np.round(heatmap.clip(0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 1 - HEATMAP_WEIGHT, colours, HEATMAP_WEIGHT, 0.0)


def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int], scale: float) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = corner[0], max(corner[1], th + base + 2)
    cv2.rectangle(canvas, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
    cv2.putText(canvas, text, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _banner(result: Screening, width: int, scale: float) -> np.ndarray:
    """The decision on a coloured band; a second line names the top class or the likely lesion types when the
    export has such a head."""
    abnormal = bool(result.abnormal)
    colour = (40, 40, 200) if abnormal else (60, 140, 40)
    relation = ">=" if abnormal else "<"
    lines = [
        f"{'ABNORMAL' if abnormal else 'NORMAL'}  p={result.probability:.3f} {relation} threshold "
        f"{result.threshold:.3f}  |  mode {result.mode}  |  {len(result.findings)} finding(s)"
    ]
    if result.image_level_summary():
        lines.append(result.image_level_summary())
    line_height = round(44 * max(scale, 0.6))
    banner = np.full((line_height * len(lines), width, 3), colour, np.uint8)
    for row, text in enumerate(lines):
        text_scale = scale * (1.1 if row == 0 else 0.9)
        while cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, text_scale, 2)[0][0] > width - 16 and text_scale > 0.3:
            text_scale *= 0.9
        (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, text_scale, 2)
        baseline = row * line_height + (line_height + th) // 2
        cv2.putText(banner, text, (8, baseline), cv2.FONT_HERSHEY_SIMPLEX, text_scale, (255, 255, 255), 2,
                    cv2.LINE_AA)  # fmt: skip
    return banner


def write_outputs(
    result: Screening,
    out_dir: Path,
    stem: Path,
    model_hashes: dict[str, str],
    heatmap: np.ndarray | None = None,
    overlay_image: np.ndarray | None = None,
    dicom: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    """Write ``<out>/<stem>.overlay.png`` (when there is an image), ``<out>/<stem>.heatmap.png`` (the overlay with
    the Grad-CAM ``heatmap`` blended in, when given) and ``<out>/<stem>.json``; the report and its path.
    ``overlay_image`` is :func:`render_overlay`'s when the caller already drew it; ``dicom`` goes into the report."""
    target = out_dir / stem
    overlay_path = target.with_name(target.name + ".overlay.png")
    heatmap_path = target.with_name(target.name + ".heatmap.png")
    report_path = target.with_name(target.name + ".json")
    if overlay_image is None:
        overlay_image = render_overlay(result)
    heatmap_image = render_overlay(result, heatmap) if heatmap is not None else None
    for path, image in ((overlay_path, overlay_image), (heatmap_path, heatmap_image)):
        if image is not None:
            write_png_atomic(path, image, compression=3)
        else:
            path.unlink(missing_ok=True)  # nothing stale from an earlier run
    report = build_report(
        result,
        None if overlay_image is None else display_name(overlay_path),
        model_hashes,
        None if heatmap_image is None else display_name(heatmap_path),
        dicom,
    )
    write_json_atomic(report_path, report)
    return report, report_path


def summary_line(report: dict[str, Any]) -> str:
    """One human line per input for the terminal."""
    if report["status"] != "ok":
        verdict = "FAILED" if report["status"] == "error" else "REJECTED"
        return f"{report['input']}: {verdict} ({report['reason_code']}) - {report['reason']}"
    decision = "ABNORMAL" if report["abnormal"] else "normal"
    findings = report["findings"]
    listed = ", ".join(f"{f['label']} {f['confidence']:.2f}" for f in findings[:3])
    more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
    detail = f"{len(findings)} finding(s)" + (f": {listed}{more}" if findings else "")
    return (
        f"{report['input']}: {decision} p={report['abnormal_probability']:.3f} (threshold {report['threshold']:.3f}), "
        f"{detail} [{report['timings_ms']['total']:.0f} ms]"
    )


STUDY_COLUMNS = ("study", "study_key", "images", "probability", "threshold", "abnormal", "method", "note", "inputs")


def write_studies_csv(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One row per study: its number (the reports' ``study.number``), its key (StudyInstanceUID or folder: how a
    PACS finds it again), the decision and its inputs (semicolon-separated). No rows: no file (nothing stale from an
    earlier run)."""
    rows = list(rows)
    if not rows:
        path.unlink(missing_ok=True)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(STUDY_COLUMNS)
    for row in rows:
        writer.writerow([*(row[c] if row[c] is not None else "" for c in STUDY_COLUMNS[:-1]), ";".join(row["inputs"])])
    write_text_atomic(path, buffer.getvalue())


def write_summary_csv(path: Path, reports: Iterable[tuple[dict[str, Any], Path]]) -> None:
    """One row per input (report, report path)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(SUMMARY_COLUMNS)
    for report, report_path in reports:
        top = max(report["findings"], key=lambda f: f["confidence"], default=None)
        writer.writerow([
            report["input"], report["status"], report["reason"] or "", report["reason_code"] or "",
            report["abnormal_probability"],
            report["threshold"], report["abnormal"], report["mode"], len(report["findings"]),
            top["label"] if top else "", top["confidence"] if top else "", report["timings_ms"].get("total"),
            display_name(report_path),
        ])  # fmt: skip
    write_text_atomic(path, buffer.getvalue())
