"""Study-level decisions: a two-view phantom, `study-fit` through its CLI on the shared tiny export, the manifest's
study section, and the deploy core's study model agreeing with what was fitted."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dernet.datasets.cli import main as datasets_main
from dernet.study.cli import main as study_main

from .conftest import CACHE_LONG_SIDE, ROOT

pytest.importorskip("lightgbm")


@pytest.fixture(scope="module")
def two_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 studies of two views each, prepared at the shared export's cache size."""
    root = tmp_path_factory.mktemp("two_views")
    assert datasets_main(["synth", "--out", str(root / "raw"), "--images", "240", "--long-side", "256", "--views",
                          "2", "--seed", "3", "--quiet"]) == 0  # fmt: skip
    assert datasets_main(["prepare", "--source", str(root / "raw"), "--out", str(root / "prepared"), "--long-side",
                          str(CACHE_LONG_SIDE), "--workers", "1", "--quiet"]) == 0  # fmt: skip
    return root / "prepared"


def test_study_fit_installs_a_model_and_scores_it_beside_the_rules(
    two_views: Path, exported_models: Path, tmp_path: Path, capsys
) -> None:
    from dernet.deploy.manifest import load_manifest, sha256_of, update_manifest
    from dernet.deploy.screening import Screener
    from dernet.deploy.study import StudyModel, feature_names, study_features

    models = tmp_path / "models"
    shutil.copytree(exported_models, models)
    out = tmp_path / "study"
    args = ["--models", str(models), "--data", str(two_views), "--out", str(out), "--bootstrap", "20"]
    assert study_main(args) == 0
    assert "study AUROC on test (24 studies): LightGBM" in capsys.readouterr().out

    table = pd.read_csv(two_views / "classification.csv")
    studies = table.groupby(["split", "study_id"]).abnormal.max().reset_index()
    val, test = studies[studies.split == "val"], studies[studies.split == "test"]
    manifest = load_manifest(models)
    spec = manifest.study
    assert spec.chosen_on["split"] == "val" and spec.chosen_on["studies"] == len(val)
    assert spec.chosen_on["abnormal"] == int(val.abnormal.sum())
    assert spec.features == feature_names(manifest.classifier.members, manifest.detector.class_names, True)
    assert spec.sha256 == sha256_of(models / spec.file) and set(spec.rules) == {"max", "mean"}
    result = json.loads((out / "study_test.json").read_text())
    assert result["images"] == len(test) and result["abnormal"] == int(test.abnormal.sum())
    assert list(result["models"]) == ["LightGBM", "max of the images", "mean of the images"]
    assert result["image_level"]["images"] == int((table.split == "test").sum())  # each image, its own label
    assert "24 studies (" in (out / "study_test.md").read_text() and (out / "study_roc_test.png").is_file()

    # The deploy core's study model gives the fitted model's answer for a study's screened images.
    import lightgbm

    study = test.study_id.iloc[0]
    paths = [two_views / p for p in table.path[table.study_id == study]]
    screener = Screener(models, rejection=dataclasses.replace(manifest.rejection, min_side=0))
    results = [screener.screen(p, mode="all") for p in paths]
    loaded = StudyModel.load(models, spec, manifest.classifier.members, manifest.detector.class_names)
    features = study_features(results, manifest.classifier.members, manifest.detector.class_names, True)
    booster = lightgbm.Booster(model_file=str(models / spec.file))
    assert loaded.probability(results) == pytest.approx(float(booster.predict(features[None, :])[0]))
    assert features[0] == 2 and features[1] == max(r.probability for r in results)

    update_manifest(models, manifest.classifier, manifest.preprocessing, {}, "again")  # a new classifier
    assert load_manifest(models).study is None  # the study model learned the old one: dropped


def test_too_few_studies_and_a_val_split_are_one_line(prepared_dir: Path, exported_models: Path, tmp_path: Path,
                                                      capsys) -> None:  # fmt: skip
    models = tmp_path / "models"
    shutil.copytree(exported_models, models)
    args = ["--models", str(models), "--data", str(prepared_dir), "--out", str(tmp_path / "out")]
    assert study_main(args) == 2
    err = capsys.readouterr().err
    assert "a study model needs at least 5 of each" in err and "Traceback" not in err
    assert study_main([*args, "--split", "val"]) == 2
    assert "fitted on val, so report another split" in capsys.readouterr().err


def test_python_m_dernet_study_fit_is_the_study_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "dernet", "study-fit", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert done.returncode == 0 and "--no-boxes" in done.stdout and "usage: python -m dernet study-fit" in done.stdout


def test_study_features_summarize_the_views() -> None:
    from dernet.deploy.screening import Finding, Screening
    from dernet.deploy.study import feature_names, rule_probability, study_features

    views = [Screening("a", "ok", "all", 0.5, probability=0.2, member_probabilities={"m": 0.1},
                       findings=[Finding("B", 1, 0.7, [0, 0, 1, 1])]),
             Screening("b", "ok", "all", 0.5, probability=0.8, member_probabilities={"m": 0.5},
                       findings=[Finding("B", 1, 0.4, [0, 0, 1, 1]), Finding("A", 0, 0.3, [0, 0, 1, 1])])]  # fmt: skip
    assert feature_names(["m"], ["A", "B"], True) == ("views", "p_max", "p_mean", "p_min", "m_max", "m_mean",
                                                      "box_A", "box_B")  # fmt: skip
    np.testing.assert_allclose(study_features(views, ["m"], ["A", "B"], True), [2, 0.8, 0.5, 0.2, 0.5, 0.3, 0.3, 0.7])
    assert rule_probability(views, "max") == 0.8 and rule_probability(views, "mean") == pytest.approx(0.5)


def _gate(inputs: list[Path], models: Path, out: Path, *extra: str) -> dict[str, dict]:
    from dernet.gate.cli import main as gate_main

    assert gate_main([*map(str, inputs), "--models", str(models), "--out", str(out), *extra]) == 0
    return {p.name: json.loads(p.read_text()) for p in out.rglob("*.json")}


def test_the_gate_decides_each_study_with_the_export_s_model_or_the_max_rule(
    two_views: Path, exported_models: Path, tmp_path: Path
) -> None:
    raw = two_views.parent / "raw" / "test_images"
    annotations = pd.read_csv(two_views.parent / "raw" / "annotations" / "test.csv", dtype=str)
    first_studies = list(dict.fromkeys(annotations.study_id))[:3]
    inputs = [raw / f"{i}.dicom" for i in annotations.drop_duplicates("image_id").image_id[
        annotations.drop_duplicates("image_id").study_id.isin(first_studies)]]  # fmt: skip
    assert len(inputs) == 6

    plain = _gate(inputs, exported_models, tmp_path / "plain")  # no study model: the max rule, at the image threshold
    studies = pd.read_csv(tmp_path / "plain" / "studies.csv", dtype={"study_key": str})
    assert sorted(studies.study_key) == sorted(first_studies) and set(studies.images) == {2}
    for _, group in pd.DataFrame([r["study"] | {"p": r["abnormal_probability"], "t": r["threshold"]}
                                       for r in plain.values()]).groupby("number"):  # fmt: skip
        assert len(group) == 2 and set(group.method) == {"max of the images"}
        assert group.probability.iloc[0] == pytest.approx(group.p.max(), abs=1e-6)
        assert set(group.threshold) == set(group.t)
    for name, report in plain.items():
        assert not any(uid in json.dumps(report) for uid in first_studies), name  # the study UID stays in the CSV

    models = tmp_path / "models"
    shutil.copytree(exported_models, models)
    assert study_main(["--models", str(models), "--data", str(two_views), "--out", str(tmp_path / "fit"),
                       "--bootstrap", "10"]) == 0  # fmt: skip
    learned = _gate(inputs, models, tmp_path / "learned", "--mode", "all")
    assert {r["study"]["method"] for r in learned.values()} == {"LightGBM"}
    from dernet.deploy.manifest import load_manifest

    assert {r["study"]["threshold"] for r in learned.values()} == {load_manifest(models).study.threshold}
    gated = _gate(inputs, models, tmp_path / "gated", "--mode", "gate")  # box features need --mode all
    assert {r["study"]["method"] for r in gated.values()} == {"max of the images"}
    assert all("learned box scores of --mode all" in r["study"]["note"] for r in gated.values())

    none = _gate(inputs, models, tmp_path / "learned", "--study-from", "none")  # the same folder: no stale CSV
    assert not (tmp_path / "learned" / "studies.csv").exists() and not any("study" in r for r in none.values())


def test_study_from_folder_groups_other_files_by_their_folder(exported_models: Path, phantom_dir: Path,
                                                              tmp_path: Path, capsys) -> None:  # fmt: skip
    import cv2

    from dernet.imaging import load_windowed

    for i, dicom in enumerate(sorted((phantom_dir / "test_images").glob("*.dicom"))[:3]):
        folder = tmp_path / "in" / ("patient_a" if i < 2 else "patient_b")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"view{i}.png"), load_windowed(dicom, 256)[0])
    reports = _gate([tmp_path / "in"], exported_models, tmp_path / "out", "--study-from", "folder")
    studies = pd.read_csv(tmp_path / "out" / "studies.csv")
    assert list(studies.images) == [2] and studies.study_key[0].endswith("patient_a")  # a lone view is its image
    assert [name for name, r in sorted(reports.items()) if "study" in r] == ["view0.png.json", "view1.png.json"]
    capsys.readouterr()
    _gate([tmp_path / "in"], exported_models, tmp_path / "json", "--study-from", "folder", "--json")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line.get("study") for line in lines] == [None, None, None, 1]  # the images, then each study
    assert sorted(lines[3]["inputs"]) == sorted(r["input"] for r in lines[:2]) and "study_key" not in lines[3]
    _gate([tmp_path / "in"], exported_models, tmp_path / "pngs")  # by default only DICOMs group (by their UID)
    assert not (tmp_path / "pngs" / "studies.csv").exists()
