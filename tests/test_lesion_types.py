"""Lesion types: folder-per-class data (synth and prepare), multilabel and multiclass members through the real CLI,
and their metrics cross-checked against scikit-learn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

from dernet.datasets.cli import main as datasets_main
from dernet.ensemble.cli import main as dernet_main
from dernet.metrics import youden_threshold
from dernet.metrics.types import confusion_markdown, multiclass_metrics, multilabel_metrics, row_normalized

from .conftest import CACHE_LONG_SIDE, ROOT, quick

GHAURI = "foraminal stenosis,osteophyte,surgical implant,normal"


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ghauri's four classes as a 40-image phantom (10 per class), prepared at the release phantom's cache size
    (so its classifier can be exported beside the shared tiny detector)."""
    root = tmp_path_factory.mktemp("imagefolder")
    assert datasets_main(["synth", "--layout", "imagefolder", "--out", str(root / "raw"), "--images", "40",
                          "--long-side", "128", "--classes", GHAURI, "--quiet"]) == 0  # fmt: skip
    assert datasets_main(["prepare", "--layout", "imagefolder", "--source", str(root / "raw"), "--out",
                          str(root / "prepared"), "--long-side", str(CACHE_LONG_SIDE), "--workers", "1",
                          "--quiet"]) == 0  # fmt: skip
    return {"raw": root / "raw", "prepared": root / "prepared", "root": root}


def test_imagefolder_phantom_and_its_stratified_split(imagefolder: dict[str, Path]) -> None:
    raw, prepared = imagefolder["raw"], imagefolder["prepared"]
    assert sorted(p.name for p in raw.iterdir()) == sorted(GHAURI.split(","))
    files = sorted((raw / "osteophyte").iterdir())
    assert len(files) == 10 and {p.suffix for p in files} == {".png", ".jpg"}  # any format goes the same way
    table = pd.read_csv(prepared / "classification.csv")
    summary = json.loads((prepared / "summary.json").read_text())
    assert summary["layout"] == "imagefolder" and summary["classes"] == sorted(GHAURI.split(","))
    counts = table.groupby(["split", "label"]).size().unstack()
    assert (counts.loc["train"] == 8).all() and (counts.loc["val"] == 1).all() and (counts.loc["test"] == 1).all()
    assert set(table.abnormal[table.label == "normal"]) == {0} and set(table.abnormal[table.label != "normal"]) == {1}
    assert all((prepared / p).is_file() for p in table.path)
    assert summary["split_source"] == "stratified 80/10/10, seed 42"


def test_a_split_csv_is_followed_and_a_partial_one_is_refused(imagefolder: dict[str, Path], tmp_path: Path,
                                                              capsys) -> None:  # fmt: skip
    raw = tmp_path / "raw"
    shutil.copytree(imagefolder["raw"], raw)
    sources = sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file())
    split = ["test" if "0000" in s else "val" if "0001" in s else "train" for s in sources]
    pd.DataFrame({"path": sources, "split": split}).to_csv(raw / "split.csv", index=False)
    args = ["prepare", "--layout", "imagefolder", "--source", str(raw), "--out", str(tmp_path / "out"),
            "--long-side", "64", "--workers", "1", "--quiet", "--classes", GHAURI]  # fmt: skip
    assert datasets_main(args) == 0
    table = pd.read_csv(tmp_path / "out" / "classification.csv")
    assert dict(zip(table.source, table.split, strict=True)) == dict(zip(sources, split, strict=True))
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["classes"] == GHAURI.split(",")
    pd.DataFrame({"path": sources[1:], "split": split[1:]}).to_csv(raw / "split.csv", index=False)
    assert datasets_main(args) == 2
    assert f"split.csv: 1 images are not listed, e.g. {sources[0]}" in capsys.readouterr().err
    shutil.rmtree(raw / "normal")
    assert datasets_main(args) == 2
    err = capsys.readouterr().err
    assert "needs a subfolder per class" in err and "'normal'" in err and "Traceback" not in err


def _fit(config: str, task: str, prepared: Path, runs: Path) -> Path:
    args = ["fit", "--config", str(ROOT / config), *quick(prepared, runs, steps=3), "--model.task", task]
    assert dernet_main(args) == 0
    return runs / Path(config).stem / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def multiclass_checkpoint(imagefolder: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multiclass member trained three steps on the folder-per-class phantom through the real CLI."""
    runs = tmp_path_factory.mktemp("multiclass_runs")
    return _fit("configs/demo/ensemble/resnet50.yaml", "multiclass", imagefolder["prepared"], runs)


def test_multiclass_member_trains_and_evaluates_through_the_cli(
    imagefolder: dict[str, Path], multiclass_checkpoint: Path, tmp_path: Path
) -> None:
    from dernet.datasets.tables import read_table, split_rows
    from dernet.ensemble.predict import load_member, predict_probabilities

    checkpoint = multiclass_checkpoint
    model = load_member(checkpoint)
    assert model.hparams.task == "multiclass" and model.hparams.classes == sorted(GHAURI.split(","))
    assert len(model.hparams.pos_weight) == 4  # class-weighted cross-entropy
    out = tmp_path / "evaluation"
    args = ["evaluate-types", "--checkpoint", str(checkpoint), "--data-dir", str(imagefolder["prepared"]),
            "--split", "train", "--out", str(out)]  # fmt: skip
    assert dernet_main(args) == 0
    result = json.loads((out / "types_train.json").read_text())
    assert (out / "confusion_train.png").stat().st_size > 5000 and "| true \\ predicted |" in (
        out / "types_train.md"
    ).read_text()
    rows = split_rows(read_table(imagefolder["prepared"]), "train")
    probs = predict_probabilities(model, imagefolder["prepared"], rows, model.trained_clahe)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)  # softmax
    labels = rows.label.map({c: i for i, c in enumerate(model.hparams.classes)}).to_numpy()
    assert result["images"] == 32 and result["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert result["confusion"] == confusion_matrix(labels, probs.argmax(1), labels=range(4)).tolist()


def test_multilabel_member_trains_and_picks_each_class_threshold_on_val(prepared_dir: Path, tmp_path: Path) -> None:
    from dernet.datasets.tables import read_table, split_rows
    from dernet.ensemble.predict import load_member, predict_probabilities
    from dernet.ensemble.tasks import task_targets

    checkpoint = _fit("configs/demo/ensemble/densenet121.yaml", "multilabel", prepared_dir, tmp_path)
    model = load_member(checkpoint)
    assert model.hparams.task == "multilabel" and len(model.hparams.classes) == 7 and len(model.hparams.pos_weight) == 7
    args = ["evaluate-types", "--checkpoint", str(checkpoint), "--data-dir", str(prepared_dir), "--split", "test",
            "--bootstrap", "50"]  # fmt: skip
    assert dernet_main(args) == 0
    result = json.loads((checkpoint.parent.parent / "evaluation" / "types_test.json").read_text())
    table = read_table(prepared_dir)
    scored = {}
    for split in ("val", "test"):
        rows = split_rows(table, split)
        scored[split] = (task_targets(rows, "multilabel", model.hparams.classes),
                         predict_probabilities(model, prepared_dir, rows, model.trained_clahe))  # fmt: skip
    (val_t, val_p), (test_t, test_p) = scored["val"], scored["test"]
    assert result["thresholds"]["chosen_on"]["split"] == "val"
    for k, name in enumerate(model.hparams.classes):
        chosen, entry = result["thresholds"]["values"][k], result["per_class"][name]
        if len(np.unique(val_t[:, k])) == 2:
            assert chosen == pytest.approx(youden_threshold(val_t[:, k], val_p[:, k]))
        else:
            assert chosen is None and entry["threshold"] == 0.5
        assert entry["positives"] == int(test_t[:, k].sum())
        if len(np.unique(test_t[:, k])) == 2:
            assert entry["metrics"]["auroc"] == pytest.approx(roc_auc_score(test_t[:, k], test_p[:, k]))
            low, high = entry["ci95"]["auroc"]
            assert 0.0 <= low <= high <= 1.0


def test_tasks_that_do_not_fit_the_data_are_one_line_errors(prepared_dir: Path, imagefolder: dict[str, Path],
                                                            tmp_path: Path, capsys) -> None:  # fmt: skip
    for task, data, message in (("multiclass", prepared_dir, "needs a folder-per-class dataset"),
                                ("multilabel", imagefolder["prepared"], "use task: multiclass")):  # fmt: skip
        args = ["fit", "--config", str(ROOT / "configs/demo/ensemble/resnet50.yaml"), *quick(data, tmp_path),
                "--model.task", task]  # fmt: skip
        assert dernet_main(args) == 2
        err = capsys.readouterr().err
        assert f"error: {data}: " in err and message in err and "Traceback" not in err


def test_mixed_member_tasks_and_cv_on_a_folder_dataset_are_one_line_errors(
    imagefolder: dict[str, Path], multiclass_checkpoint: Path, trained: dict, tmp_path: Path, capsys
) -> None:
    import yaml

    checkpoint = multiclass_checkpoint
    config = yaml.safe_load(trained["ensemble_yaml"].read_text())
    config["members"]["resnet50"] = str(checkpoint)
    (tmp_path / "ensemble.yaml").write_text(yaml.safe_dump(config))
    assert dernet_main(["fit-ensemble", "--config", str(tmp_path / "ensemble.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: a multiclass member beside binary ones; an ensemble's members share one task" in err
    assert "Traceback" not in err
    unfolded = tmp_path / "unfolded"  # a folder dataset prepared before it had folds
    shutil.copytree(imagefolder["prepared"], unfolded)
    table = pd.read_csv(unfolded / "classification.csv")
    table.assign(fold=-1).to_csv(unfolded / "classification.csv", index=False)
    args = ["fit", "--config", str(ROOT / "configs/demo/ensemble/resnet50.yaml"), *quick(unfolded, tmp_path),
            "--model.task", "multiclass", "--data.val_fold", "0"]  # fmt: skip
    assert dernet_main(args) == 2
    assert "has no cross-validation folds (prepared before" in capsys.readouterr().err


def test_cross_validation_on_a_folder_dataset(imagefolder: dict[str, Path], tmp_path: Path) -> None:
    """Class-stratified folds over train + val (test never in one), and `cv` trains a fold each through the CLI."""
    table = pd.read_csv(imagefolder["prepared"] / "classification.csv")
    development = table[table.split != "test"]
    assert set(table.fold[table.split == "test"]) == {-1} and set(development.fold) == set(range(5))
    per_fold = development.groupby(["label", "fold"]).size().unstack(fill_value=0)
    assert (per_fold.max(axis=1) - per_fold.min(axis=1) <= 1).all()  # each class spread evenly over the folds
    args = ["cv", "--folds", "2", "--config", str(ROOT / "configs/demo/ensemble/resnet50.yaml"),
            *quick(imagefolder["prepared"], tmp_path, steps=2), "--model.task", "multiclass"]  # fmt: skip
    assert dernet_main(args) == 0
    summary = json.loads((tmp_path / "resnet50" / "cv" / "summary.json").read_text())
    assert summary["folds"] == 2 and len(summary["val_auroc"]) == 2


# --- metrics against scikit-learn -----------------------------------------------------------------------------------


def test_multiclass_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 200)
    logits = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = multiclass_metrics(labels, probs, ["a", "b", "c", "d"])
    predicted = probs.argmax(axis=1)
    assert result["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    for average, key in ((None, "per_class"), ("macro", "macro")):
        for metric, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
            expected = fn(labels, predicted, average=average, zero_division=0)
            got = [e[metric] for e in result["per_class"].values()] if key == "per_class" else result["macro"][metric]
            np.testing.assert_allclose(got, expected)
    assert result["macro"]["auroc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    for k, entry in enumerate(result["per_class"].values()):  # specificity: the recall of "not this class"
        assert entry["specificity"] == pytest.approx(recall_score(labels != k, predicted != k))


def test_confusion_matrix_with_known_counts() -> None:
    classes = ["stenosis", "osteophyte", "normal"]
    # truth 0 x4 (3 right, 1 called normal), truth 1 x2 (both called 0), truth 2 x4 (all right)
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 0, 0, 2, 0, 0, 2, 2, 2, 2])
    result = multiclass_metrics(labels, np.eye(3)[predicted], classes)
    assert result["confusion"] == [[3, 0, 1], [2, 0, 0], [0, 0, 4]]
    assert result["confusion_normalized"] == [[0.75, 0.0, 0.25], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    assert result["accuracy"] == pytest.approx(0.7)
    assert result["per_class"]["stenosis"]["precision"] == pytest.approx(0.6)
    assert result["per_class"]["normal"]["specificity"] == pytest.approx(5 / 6)
    table = confusion_markdown(np.array(result["confusion"]), classes).splitlines()
    assert table[0] == "| true \\ predicted | stenosis | osteophyte | normal |"
    assert table[2] == "| stenosis | 0.75 (3) | 0.00 (0) | 0.25 (1) |"
    np.testing.assert_array_equal(row_normalized(np.zeros((2, 2))), np.zeros((2, 2)))  # an empty row stays zero


def test_multilabel_metrics_leave_out_classes_without_both_sides() -> None:
    rng = np.random.default_rng(5)
    targets = np.stack([rng.integers(0, 2, 60), np.zeros(60)], axis=1)
    probs = np.clip(targets * 0.4 + rng.uniform(0, 0.6, targets.shape), 0, 1)
    result = multilabel_metrics(targets, probs, [0.5, None], ["seen", "absent"], resamples=30)
    assert result["per_class"]["absent"]["metrics"] is None and result["per_class"]["absent"]["threshold"] == 0.5
    assert result["macro_auroc"] == pytest.approx(roc_auc_score(targets[:, 0], probs[:, 0]))


# --- a folder-per-class ensemble, exported ----------------------------------------------------------------------------


def test_a_multiclass_ensemble_exports_its_classes_and_the_gate_reports_the_top_class(
    imagefolder: dict[str, Path], multiclass_checkpoint: Path, trained: dict, exported_models: Path, tmp_path: Path
) -> None:
    import dataclasses

    from dernet.deploy.manifest import load_manifest
    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.fit_ensemble import fit_ensemble
    from dernet.export.classifier import export_classifier
    from dernet.gate.cli import main as gate_main

    from .test_export_gate import REPORT_KEYS, _reports

    classes = tuple(sorted(GHAURI.split(",")))
    members = {"resnet_a": str(multiclass_checkpoint), "resnet_b": str(multiclass_checkpoint)}
    config = dataclasses.replace(load_ensemble_config(trained["ensemble_yaml"]), members=members, weights=[1.0, 1.0],
                                 combine="probability", data_dir=str(imagefolder["prepared"]),
                                 output=str(tmp_path / "ensemble.json"))  # fmt: skip
    record, record_path = fit_ensemble(config), tmp_path / "ensemble.json"  # abnormal = 1 - P(normal)
    assert record.classes == classes and record.chosen_on.split == "val"

    models = tmp_path / "models"
    shutil.copytree(exported_models, models)  # the tiny detector stays; the classifier is replaced
    spec = export_classifier(tmp_path / "ensemble.json", imagefolder["prepared"], models)
    manifest = load_manifest(models)
    assert spec.verified_max_abs_diff <= 1e-4  # every output, ONNX Runtime against torch
    assert manifest.classifier.outputs == ("probability", "member_probabilities", "class_probabilities")
    assert manifest.classifier.classes == classes

    import cv2

    image = tmp_path / "osteophyte.png"  # the phantom at twice its size: the gate refuses sides under 128 px
    small = cv2.imread(str(sorted((imagefolder["raw"] / "osteophyte").glob("*.png"))[0]), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(image), cv2.resize(small, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    out = tmp_path / "out"
    args = [str(image), "--models", str(models), "--out", str(out), "--explain", "--ensemble", str(record_path)]
    assert gate_main(args) == 0
    report = _reports(out)[f"{image.name}.json"]
    assert set(report) == REPORT_KEYS | {"class_probabilities", "top_class"}
    assert Path(report["heatmap"]).is_file()  # Grad-CAM of 1 - P(normal) in each multiclass member
    probabilities = report["class_probabilities"]
    assert tuple(probabilities) == classes and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    top = max(probabilities, key=probabilities.get)
    assert report["top_class"] == {"label": top, "probability": pytest.approx(probabilities[top], abs=1e-6)}
    # the same member twice, probability voting: the ensemble's abnormality is exactly 1 - P(normal)
    assert report["abnormal_probability"] == pytest.approx(1 - probabilities["normal"], abs=1e-5)


def test_the_multiclass_graph_votes_on_one_minus_p_normal() -> None:
    """The graph's three outputs against the definitions, for both combine rules, with two members."""
    import torch

    from dernet.export.classifier import EnsembleGraph

    torch.manual_seed(0)
    members = [torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)) for _ in range(2)]
    images = torch.rand(5, 1, 4, 4)
    softmax = [torch.softmax(m(images), dim=1).detach().numpy().astype(np.float64) for m in members]
    abnormal = np.stack([1 - p[:, 2] for p in softmax], axis=1)  # 'normal' is the third class
    weights = np.array([0.25, 0.75])
    for combine in ("probability", "logit"):
        graph = EnsembleGraph(members, [4, 4], list(weights), combine, normal_index=2).eval()
        with torch.inference_mode():
            probability, member_probs, class_probs = (t.numpy() for t in graph(images))
        np.testing.assert_allclose(member_probs, abnormal, atol=1e-6)
        np.testing.assert_allclose(class_probs, weights[0] * softmax[0] + weights[1] * softmax[1], atol=1e-6)
        logits = np.log(abnormal / (1 - abnormal)) @ weights
        expected = abnormal @ weights if combine == "probability" else 1 / (1 + np.exp(-logits))
        np.testing.assert_allclose(probability, expected, atol=1e-6)


def test_a_multiclass_ensemble_without_a_normal_class_is_one_line() -> None:
    from dernet.ensemble.predict import normal_index
    from dernet.errors import UsageError

    assert normal_index(["foraminal stenosis", "Normal", "osteophyte"], "x.ckpt") == 1  # case-blind
    with pytest.raises(UsageError, match=r"x.ckpt: a multiclass ensemble .* have no 'normal'; add a normal/ folder"):
        normal_index(["osteophyte", "surgical implant"], "x.ckpt")
