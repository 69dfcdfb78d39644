"""One Parquet row per input: the gate's report, flattened, plus the member probabilities and the resume key.

Built from the report dict of :func:`dernet.deploy.report.build_report`, so a row holds exactly the numbers the
gate's JSON does. No patient identifiers: the report has none.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..deploy.report import build_report
from ..deploy.screening import Finding, Screening

__all__ = ["ROW_SCHEMA", "TRANSIENT", "row_of", "rows_table", "screening_of"]

_FINDING = pa.struct([("label", pa.string()), ("class_id", pa.int32()), ("confidence", pa.float64()),
                      ("box", pa.list_(pa.float64()))])  # fmt: skip
_LESION_TYPE = pa.struct([("label", pa.string()), ("probability", pa.float64()), ("threshold", pa.float64()),
                         ("likely", pa.bool_())])  # fmt: skip
_TIMINGS = pa.struct([(step, pa.float64()) for step in ("read", "preprocess", "classify", "detect", "total")])
ROW_SCHEMA = pa.schema([
    ("input", pa.string()),  # the path (or URI) as given or found: the gate report's "input"
    ("key", pa.string()),  # what resuming compares: size and modification time, or the URI for object stores
    ("study_key", pa.string()),  # the study it belongs to (--study-from): a StudyInstanceUID or a folder, or null
    ("status", pa.string()),  # ok | rejected | error
    ("reason", pa.string()),
    ("reason_code", pa.string()),  # dernet.imaging.REASON_CODES
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("modality", pa.string()),
    ("photometric", pa.string()),
    ("abnormal_probability", pa.float64()),
    ("member_probabilities", pa.map_(pa.string(), pa.float64())),
    ("threshold", pa.float64()),
    ("abnormal", pa.bool_()),
    ("mode", pa.string()),
    ("findings", pa.list_(_FINDING)),  # boxes in the original image's pixels, x1 y1 x2 y2
    ("lesion_types", pa.list_(_LESION_TYPE)),  # with a lesion-type head: per class, likely when >= its threshold
    ("class_probabilities", pa.map_(pa.string(), pa.float64())),  # with a multiclass vote: class -> probability
    ("top_class", pa.string()),  # with a multiclass vote: the most probable class
    ("timings_ms", _TIMINGS),
    ("classifier_sha256", pa.string()),
    ("detector_sha256", pa.string()),
    ("classifier_runtime", pa.string()),
    ("detector_runtime", pa.string()),
    ("report", pa.string()),  # with --reports: the JSON report's path
    ("overlay", pa.string()),  # with --reports: the overlay PNG's path
])  # fmt: skip
# Columns the actors hand the driver beside a row, never written to Parquet: the report and overlay files' contents
# (--reports), and when the actor began and finished the row's batch (Unix seconds; throughput once actors are up).
TRANSIENT = pa.schema([("report_json", pa.string()), ("overlay_png", pa.binary()), ("batch_started", pa.float64()),
                       ("batch_finished", pa.float64())])  # fmt: skip


def row_of(
    result: Screening,
    key: str,
    model_hashes: dict[str, str],
    report: str | None,
    overlay: str | None,
    study_key: str | None = None,
) -> dict:
    """The row of one screened (or rejected) input; ``report`` and ``overlay`` are the paths its files get, if any."""
    fields = build_report(result, overlay, model_hashes)
    image = fields["image"] or {}
    return {
        "input": fields["input"],
        "key": key,
        "study_key": study_key,
        "status": fields["status"],
        "reason": fields["reason"],
        "reason_code": fields["reason_code"],
        "width": image.get("width"),
        "height": image.get("height"),
        "modality": image.get("modality"),
        "photometric": image.get("photometric"),
        "abnormal_probability": fields["abnormal_probability"],
        "member_probabilities": {name: round(p, 6) for name, p in result.member_probabilities.items()} or None,
        "threshold": fields["threshold"],
        "abnormal": fields["abnormal"],
        "mode": fields["mode"],
        "findings": fields["findings"],
        "lesion_types": fields.get("lesion_types"),
        "class_probabilities": fields.get("class_probabilities"),
        "top_class": (fields.get("top_class") or {}).get("label"),
        "timings_ms": {step: fields["timings_ms"].get(step) for step in _TIMINGS.names},
        "classifier_sha256": fields["models"].get("classifier"),
        "detector_sha256": fields["models"].get("detector"),
        "classifier_runtime": fields["runtime"].get("classifier"),
        "detector_runtime": fields["runtime"].get("detector"),
        "report": report,
        "overlay": overlay,
    }


def screening_of(row: dict[str, Any]) -> Screening:
    """What a row keeps of its screening (probabilities, boxes, status): enough for a study decision."""
    findings = [Finding(f["label"], f["class_id"], f["confidence"], f["box"]) for f in row["findings"] or []]
    return Screening(
        row["input"],
        row["status"],
        row["mode"],
        row["threshold"],
        probability=row["abnormal_probability"],
        member_probabilities=dict(row["member_probabilities"] or {}),
        findings=findings,
    )


def rows_table(rows: list[dict[str, Any]], transient: list[dict[str, Any]] | None = None) -> pa.Table:
    """Rows (and, from the actors, their transient columns) as one table of the fixed schema: blocks of rejected
    inputs only (all-null columns) still have the types of every other block."""
    table = pa.Table.from_pylist(rows, schema=ROW_SCHEMA)
    if transient is None:
        return table
    extra = pa.Table.from_pylist(transient, schema=TRANSIENT)
    for field, column in zip(TRANSIENT, extra.columns, strict=True):
        table = table.append_column(field, column)
    return table
