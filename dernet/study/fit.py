"""``python -m dernet study-fit``: learn, on the validation studies, how a study's screened images become one study
probability (LightGBM over :mod:`dernet.deploy.study`'s features), install it in the export, and score it on a
held-out split beside the simple rules (max and mean of the image probabilities) and the image-level ensemble.

Every image goes through the exported models (the gate's core, mode 'all' at the export's box confidence), so the
features are the ones the gate computes. The threshold is the Youden point of out-of-fold predictions on
validation (5-fold, stratified), so the split that trains the model does not also grade it; test is never used to
choose anything.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..datasets.tables import read_table, split_rows
from ..deploy.manifest import Manifest, StudySpec, install_model_file, load_manifest, set_study
from ..deploy.screening import Screener
from ..deploy.study import RULES, feature_names, rule_probability, study_features
from ..errors import UsageError
from ..fileio import write_json_atomic, write_text_atomic
from ..metrics import binary_metrics, bootstrap_intervals, youden_threshold
from ..metrics.tables import classification_table, plot_roc

__all__ = ["LIGHTGBM_PARAMS", "fit_study"]

STUDY_FILE = "study.txt"
LEARNED = "LightGBM"
# Small trees and a slow rate: validation holds tens to hundreds of studies, a few features each.
LIGHTGBM_PARAMS = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 5,
                   "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                   "random_state": 42, "verbose": -1, "n_jobs": 1}  # fmt: skip
OOF_FOLDS = 5


def fit_study(
    models: str | Path,
    data_dir: str | Path,
    split: str = "test",
    out_dir: str | Path = "runs/study",
    boxes: bool = True,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Fit on val, install ``study.txt`` and the manifest's ``study`` section in ``models``, and write
    ``out_dir/study_<split>.{md,json}`` and the ROC plot; returns the result."""
    from lightgbm import LGBMClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if split == "val":
        raise UsageError("--split val: the study model is fitted on val, so report another split (test)")
    models, data_dir, out_dir = Path(models), Path(data_dir), Path(out_dir)
    manifest = load_manifest(models)
    names = feature_names(manifest.classifier.members, manifest.detector.class_names, boxes)
    # The prepared cache is smaller than the originals, which preparation already read: no minimum size here.
    screener = Screener(manifest, rejection=replace(manifest.rejection, min_side=0))  # models loaded once
    fit_rows = _screened_studies(screener, data_dir, "val")
    eval_rows = _screened_studies(screener, data_dir, split)
    x_fit, y_fit = _matrix(fit_rows, manifest, boxes)
    if min(np.bincount(y_fit, minlength=2)) < OOF_FOLDS:
        raise UsageError(
            f"{data_dir}: the val split has {int(y_fit.sum())} abnormal and {int(len(y_fit) - y_fit.sum())} normal "
            f"studies; a study model needs at least {OOF_FOLDS} of each (more data, or prepare with more studies)"
        )
    folds = StratifiedKFold(OOF_FOLDS, shuffle=True, random_state=42)
    out_of_fold = cross_val_predict(LGBMClassifier(**LIGHTGBM_PARAMS), x_fit, y_fit, cv=folds,
                                    method="predict_proba")[:, 1]  # fmt: skip
    model = LGBMClassifier(**LIGHTGBM_PARAMS).fit(x_fit, y_fit)
    threshold = youden_threshold(y_fit, out_of_fold)
    rules = {rule: youden_threshold(y_fit, _rule_scores(fit_rows, rule)) for rule in RULES}

    with tempfile.TemporaryDirectory() as tmp:
        written = Path(tmp) / STUDY_FILE
        model.booster_.save_model(str(written))
        digest = install_model_file(written, models / STUDY_FILE)
    spec = StudySpec(file=STUDY_FILE, sha256=digest, features=names, threshold=threshold, boxes=boxes,
                     detector_conf=manifest.detector.conf, rules=rules,
                     chosen_on={"split": "val", "studies": int(len(y_fit)), "abnormal": int(y_fit.sum()),
                                "threshold_from": f"{OOF_FOLDS}-fold out-of-fold predictions"})  # fmt: skip
    set_study(models, spec)

    x_eval, y_eval = _matrix(eval_rows, manifest, boxes)
    scores = {LEARNED: (model.predict_proba(x_eval)[:, 1], threshold)}
    for rule in RULES:
        scores[f"{rule} of the images"] = (_rule_scores(eval_rows, rule), rules[rule])
    result = _scored(scores, y_eval, split, bootstrap)
    image_labels, image_scores = _image_level(eval_rows)
    images = _scored({"image-level ensemble": (image_scores, manifest.classifier.threshold)}, image_labels, split,
                     bootstrap)  # fmt: skip
    result.update(image_level=images, features=list(names), study_model=str(models / STUDY_FILE),
                  importances=dict(zip(names, model.booster_.feature_importance("gain").round(3).tolist(),
                                       strict=True)), fitted_on=spec.chosen_on)  # fmt: skip
    _write(result, images, scores, y_eval, out_dir, split)
    return result


def _screened_studies(screener: Screener, data_dir: Path, split: str) -> dict[str, dict[str, Any]]:
    """study_id -> {"abnormal": any image abnormal, "results": the screened images, "labels": each image's own
    label}, through the gate's core."""
    rows = split_rows(read_table(data_dir), split)
    if rows.empty:
        raise UsageError(f"{data_dir}: the {split} split is empty")
    inputs = ((data_dir / row.path, None) for row in rows.itertuples())
    results = screener.screen_many(inputs, mode="all", conf=screener.manifest.detector.conf)
    studies: dict[str, dict[str, Any]] = defaultdict(lambda: {"abnormal": 0, "results": [], "labels": []})
    for row, result in tqdm(zip(rows.itertuples(), results, strict=True), total=len(rows), unit="image",
                            desc=f"gate on {split}"):  # fmt: skip
        study = studies[str(row.study_id)]
        study["abnormal"] = max(study["abnormal"], int(row.abnormal))
        if result.status == "ok":
            study["results"].append(result)
            study["labels"].append(int(row.abnormal))
    return {k: v for k, v in studies.items() if v["results"]}  # a study whose every image was rejected has no say


def _matrix(studies: dict[str, dict[str, Any]], manifest: Manifest, boxes: bool) -> tuple[np.ndarray, np.ndarray]:
    members, classes = manifest.classifier.members, manifest.detector.class_names
    x = np.stack([study_features(s["results"], members, classes, boxes) for s in studies.values()])
    return x, np.array([s["abnormal"] for s in studies.values()], dtype=int)


def _rule_scores(studies: dict[str, dict[str, Any]], rule: str) -> np.ndarray:
    return np.array([rule_probability(s["results"], rule) for s in studies.values()])


def _image_level(studies: dict[str, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Every screened image with its own label and the ensemble's probability: the image-level reference row."""
    labels = [label for s in studies.values() for label in s["labels"]]
    scores = [r.probability for s in studies.values() for r in s["results"]]
    return np.array(labels, dtype=int), np.array(scores)


def _scored(scores: dict[str, tuple[np.ndarray, float]], labels: np.ndarray, split: str, bootstrap: int) -> dict:
    result: dict[str, Any] = {"split": split, "images": int(len(labels)), "abnormal": int(labels.sum()),
                              "bootstrap_resamples": bootstrap, "models": {}}  # fmt: skip
    if len(np.unique(labels)) < 2:
        raise UsageError(f"the {split} split needs normal and abnormal studies to score them")
    for name, (score, threshold) in scores.items():
        result["models"][name] = {
            "threshold": float(threshold),
            "metrics": binary_metrics(labels, score, threshold).as_dict(),
            "ci95": bootstrap_intervals(labels, score, threshold, bootstrap) if bootstrap else None,
        }
    return result


def _write(result: dict, images: dict, scores: dict, labels: np.ndarray, out_dir: Path, split: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / f"study_{split}.json", result)
    table = classification_table(result).replace(f"{result['images']} images", f"{result['images']} studies")
    text = [f"# Study-level decisions, `{split}` split", "", table, "", "Image level, for reference (each image "
            "with its own label, at the export's threshold):", "", classification_table(images)]  # fmt: skip
    write_text_atomic(out_dir / f"study_{split}.md", "\n".join(text) + "\n")
    plot_roc(labels, scores, out_dir / f"study_roc_{split}.png", f"{split} (studies)")
