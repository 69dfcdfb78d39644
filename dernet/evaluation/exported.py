"""Evaluate the exported models through the gate's core, per gate mode (`make evaluate`), or score gate reports.

python -m dernet.evaluation --models export --data data/prepared --split test
python -m dernet.evaluation --reports runs/gate --annotations path/to/release/annotations/test.csv

The detector runs once per image at conf 0.001 (``--mode all``); the three modes are then derived from those boxes
exactly as the gate applies them (gate: no boxes below the threshold; fusion: boxes >= 0.5 below it; all: every
box), so the tables read like the VinDr-SpineXR paper's Table 5. The counterpart fusion of that paper (the mean of
the classifier probability and the top box score) is scored as a classifier beside the ensemble.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..classes import CLASS_NAMES
from ..datasets.labels import read_row_boxes
from ..datasets.tables import read_table, split_rows
from ..datasets.vindr import read_annotations
from ..deploy.engines import RuntimeOptions
from ..deploy.manifest import load_manifest
from ..deploy.screening import FUSION_MIN_CONFIDENCE, MODES, Screener, kept_by_mode
from ..errors import UsageError
from ..fileio import write_json_atomic, write_text_atomic
from ..imaging import scale_boxes
from ..metrics import DetectionSample, average_precision_50, binary_metrics, bootstrap_intervals
from ..metrics.tables import classification_table, detection_table, plot_confusion, plot_pr, plot_roc

__all__ = ["ScoredImage", "evaluate_exported", "format_result", "fused_score", "score_images", "score_reports"]

EVAL_CONF = 0.001
FUSION_NAME = "fusion: (p + top box) / 2"


@dataclass
class ScoredImage:
    """One image's ground truth and what the gate said in mode 'all' (boxes in original pixels)."""

    image_id: str
    width: int
    height: int
    abnormal: int
    probability: float
    gt_boxes: np.ndarray
    gt_classes: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    member_probabilities: dict[str, float] = field(default_factory=dict)


def fused_score(probability: float, box_scores: np.ndarray) -> float:
    """VinDr-SpineXR counterpart fusion: mean of the classifier probability and the most confident box (0 if none)."""
    return (probability + (float(box_scores.max()) if len(box_scores) else 0.0)) / 2


def mode_samples(images: list[ScoredImage], mode: str, threshold: float) -> list[DetectionSample]:
    """Detection samples as the gate in ``mode`` would have reported them."""
    samples = []
    for im in images:
        keep = kept_by_mode(mode, im.probability, threshold, im.scores)
        samples.append(
            DetectionSample(
                im.image_id,
                im.width,
                im.height,
                im.gt_boxes,
                im.gt_classes,
                im.boxes[keep],
                im.scores[keep],
                im.classes[keep],
            )  # fmt: skip
        )
    return samples


def score_images(
    images: list[ScoredImage],
    threshold: float,
    member_thresholds: dict[str, float] | None = None,
    bootstrap: int = 1000,
    label: str = "test",
) -> dict[str, Any]:
    """Classification metrics with 95% CIs (ensemble, members, counterpart fusion) and AP@0.5 per gate mode."""
    if not images:
        raise UsageError("nothing to score: every input was rejected or none matched the annotations")
    labels = np.array([im.abnormal for im in images], int)
    scores: dict[str, tuple[np.ndarray, float]] = {}
    for name, member_threshold in (member_thresholds or {}).items():
        scores[name] = (np.array([im.member_probabilities[name] for im in images]), member_threshold)
    scores["ensemble"] = (np.array([im.probability for im in images]), threshold)
    scores[FUSION_NAME] = (np.array([fused_score(im.probability, im.scores) for im in images]), 0.5)
    result: dict[str, Any] = {
        "split": label,
        "images": len(images),
        "abnormal": int(labels.sum()),
        "bootstrap_resamples": bootstrap,
        "threshold": threshold,
        "conf": EVAL_CONF,
        "models": {},
        "detection": {},
    }
    if len(np.unique(labels)) == 2:
        for name, (score, thr) in scores.items():
            point = binary_metrics(labels, score, thr).as_dict()
            ci95 = bootstrap_intervals(labels, score, thr, bootstrap) if bootstrap else None
            result["models"][name] = {"threshold": thr, "metrics": point, "ci95": ci95}
    for mode in MODES:
        ap = average_precision_50(mode_samples(images, mode, threshold), CLASS_NAMES)
        result["detection"][mode] = ap
    result["_roc"] = (labels, scores)
    return result


def evaluate_exported(
    models: str | Path,
    data_dir: str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    bootstrap: int = 1000,
    runtime: RuntimeOptions | None = None,
    variant: str | dict[str, str] = "auto",
) -> dict[str, Any]:
    """Run the gate's core (mode 'all', conf 0.001) over a prepared split and write tables and plots (``out_dir``
    None: no files, the result only)."""
    data_dir = Path(data_dir)
    manifest = load_manifest(models)
    # The prepared cache is smaller than the originals, which preparation already read: no minimum size here.
    screener = Screener(manifest, runtime, replace(manifest.rejection, min_side=0), variant=variant)
    rows = split_rows(read_table(data_dir), split)
    if rows.empty:
        raise UsageError(f"{data_dir}: the {split} split is empty")
    images, rejected = [], []
    row_list = list(rows.itertuples())
    results = screener.screen_many(((data_dir / row.path, None) for row in row_list), mode="all", conf=EVAL_CONF)
    desc = f"gate on {split} ({', '.join(sorted(set(screener.variants.values())))})"
    for row, result in tqdm(zip(row_list, results, strict=True), total=len(rows), desc=desc, unit="image"):
        if result.status != "ok":
            rejected.append({"image_id": row.image_id, "reason": result.reason})
            continue
        # The cache image is the gate's input here: its boxes are in cache pixels; scale them to the original.
        cache_size, original_size = (result.meta.width, result.meta.height), (row.width, row.height)
        boxes = scale_boxes([f.box for f in result.findings], cache_size, original_size)
        gt_boxes, gt_classes = read_row_boxes(data_dir, row)
        images.append(
            ScoredImage(
                row.image_id,
                int(row.width),
                int(row.height),
                int(row.abnormal),
                float(result.probability),
                gt_boxes,
                gt_classes,
                boxes,
                np.array([f.confidence for f in result.findings]),
                np.array([f.class_id for f in result.findings], int),
                result.member_probabilities,
            )  # fmt: skip
        )
    classifier = manifest.classifier
    member_thresholds = dict(zip(classifier.members, classifier.member_thresholds, strict=True))
    result = score_images(images, classifier.threshold, member_thresholds, bootstrap, split)
    result.update(rejected=rejected, models_dir=str(models), data=str(data_dir), runtime=dict(screener.variants))
    if out_dir is not None:
        _write(result, Path(out_dir), split)
    else:
        result.pop("_roc")
    return result


def score_reports(
    reports_dir: str | Path, annotations_csvs: list[str | Path] | str | Path, bootstrap: int = 1000
) -> dict[str, Any]:
    """Score gate reports (made with ``--mode all --conf 0.001``) against release annotation CSVs, from the reports
    alone: the image id is the input file's name without its extension."""
    reports_dir = Path(reports_dir)
    csvs = [annotations_csvs] if isinstance(annotations_csvs, (str, Path)) else list(annotations_csvs)
    annotations = {}
    for csv_path in csvs:
        annotations.update(read_annotations(Path(csv_path), "test", Counter()))
    images, unmatched, threshold = [], 0, None
    for path in sorted(reports_dir.rglob("*.json")):
        report = json.loads(path.read_text())
        if not isinstance(report, dict) or "status" not in report:
            continue  # evaluation outputs or other JSON
        image_id = Path(report["input"]).name.split(".dicom")[0].removesuffix(".dcm")
        truth = annotations.get(image_id)
        if truth is None or report["status"] != "ok":
            unmatched += truth is None
            continue
        if report["mode"] != "all":
            raise UsageError(f"{path}: made with --mode {report['mode']}; score reports made with --mode all")
        threshold = report["threshold"]
        findings = report["findings"]
        images.append(
            ScoredImage(
                image_id,
                report["image"]["width"],
                report["image"]["height"],
                int(truth.abnormal),
                float(report["abnormal_probability"]),
                np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in truth.boxes], float).reshape(-1, 4),
                np.array([b.class_id for b in truth.boxes], int),
                np.array([f["box"] for f in findings], float).reshape(-1, 4),
                np.array([f["confidence"] for f in findings], float),
                np.array([f["class_id"] for f in findings], int),
            )  # fmt: skip
        )
    label = ", ".join(str(c) for c in csvs)
    result = score_images(images, threshold if threshold is not None else 0.5, None, bootstrap, label)
    result.update(unmatched_reports=unmatched, missing_reports=len(annotations) - len(images))
    _write(result, reports_dir / "evaluation", "reports")
    return result


def format_result(result: dict[str, Any]) -> str:
    lines = []
    if result["models"]:
        lines += ["## Classification", "", classification_table(result), ""]
    lines += [
        "## Detection per gate mode",
        "",
        f"AP@0.5 (pycocotools) with boxes at conf >= {result['conf']} and the gate's threshold "
        f"{result['threshold']:.4f}: gate = no boxes below it; fusion = boxes >= {FUSION_MIN_CONFIDENCE} below it; "
        "all = every box.",
        "",
        detection_table({mode: result["detection"][mode] for mode in MODES}),
    ]
    if result.get("rejected"):
        lines += ["", f"{len(result['rejected'])} image(s) rejected by the gate and left out."]
    return "\n".join(lines)


def _write(result: dict[str, Any], out_dir: Path, label: str) -> None:
    labels, scores = result.pop("_roc")
    write_json_atomic(out_dir / f"evaluation_{label}.json", result)
    write_text_atomic(out_dir / f"evaluation_{label}.md", format_result(result) + "\n")
    if result["models"]:
        plot_roc(labels, scores, out_dir / f"roc_{label}.png", result["split"])
        score, threshold = scores["ensemble"]
        title = f"ensemble, {result['split']} split"
        plot_confusion(labels, score, threshold, out_dir / f"confusion_{label}.png", title)
    pr = dict(result["detection"]["all"], split=f"{result['split']}, mode all")
    plot_pr(pr, out_dir / f"pr_{label}.png")
