"""Export round trip and the torch-free gate, on the tiny models of the shared `exported_models` fixture."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from dernet.deploy.manifest import load_manifest, sha256_of
from dernet.gate.cli import main as gate_main
from dernet.imaging import load_windowed

REPORT_KEYS = {"input", "status", "reason", "reason_code", "overlay", "heatmap", "image", "abnormal_probability",
               "threshold", "abnormal", "mode", "findings", "timings_ms", "models", "runtime"}  # fmt: skip


def _phantom_files(phantom_dir: Path, abnormal: bool, count: int) -> list[Path]:
    """The first ``count`` abnormal (or normal) phantom DICOM files of one-image studies, so each input is a study
    of its own (the phantom's studies have one or two views, and two views of a study get a study decision)."""
    from dernet.datasets.vindr import read_annotations

    annotations = read_annotations(phantom_dir / "annotations" / "train.csv", "train", Counter())
    paths = {i.image_id: phantom_dir / "train_images" / f"{i.image_id}.dicom" for i in annotations.values()}
    study_of = {i: pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for i, p in paths.items()}
    views = Counter(study_of.values())
    ids = [i.image_id for i in annotations.values() if i.abnormal == abnormal and views[study_of[i.image_id]] == 1]
    return [paths[i] for i in ids[:count]]


@pytest.fixture(scope="module")
def inputs(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: two abnormal and one normal phantom DICOM (one without extension), a PNG and a JPEG."""
    folder = tmp_path_factory.mktemp("inputs")
    abnormal, normal = _phantom_files(phantom_dir, True, 2), _phantom_files(phantom_dir, False, 1)
    shutil.copyfile(abnormal[0], folder / "abnormal.dcm")
    shutil.copyfile(abnormal[1], folder / "abnormal_no_extension")
    shutil.copyfile(normal[0], folder / "normal.dicom")
    windowed, _ = load_windowed(abnormal[0], 256)
    cv2.imwrite(str(folder / "exported.png"), windowed)
    cv2.imwrite(str(folder / "exported.jpg"), windowed, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def _reports(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}


# --- export -----------------------------------------------------------------------------------------------------


def test_manifest_records_what_the_gate_needs(exported_models: Path) -> None:
    manifest = load_manifest(exported_models)
    assert manifest.classifier.members == ("densenet121", "tf_efficientnetv2_s", "resnet50")
    assert sum(manifest.classifier.weights) == pytest.approx(1.0)
    assert 0.0 <= manifest.classifier.threshold <= 1.0 and manifest.classifier.chosen_on["split"] == "val"
    assert manifest.detector.nms_in_graph is False and len(manifest.detector.class_names) == 7
    assert manifest.preprocessing.cache_long_side == 128 and manifest.preprocessing.clahe_clip_limit == 2.0
    for spec in (manifest.classifier, manifest.detector):
        assert sha256_of(manifest.path_of(spec)) == spec.sha256
    assert manifest.classifier.verified_max_abs_diff <= 1e-4
    assert not [p for p in exported_models.iterdir() if p.name.startswith(".")]  # no temp files left


def test_classifier_graph_matches_pytorch_with_a_dynamic_batch(exported_models: Path, trained: dict) -> None:
    import onnxruntime as ort
    import torch

    from dernet.ensemble.predict import load_member
    from dernet.export.classifier import EnsembleGraph

    manifest = load_manifest(exported_models)
    members = [load_member(trained["runs"] / n / "checkpoints" / "best.ckpt") for n in manifest.classifier.members]
    graph = EnsembleGraph(members, [64] * 3, list(manifest.classifier.weights), manifest.classifier.combine).eval()
    batch = np.random.default_rng(0).random((3, 1, 64, 64), dtype=np.float32)
    session = ort.InferenceSession(str(manifest.path_of(manifest.classifier)), providers=["CPUExecutionProvider"])
    probability, members_p = session.run(None, {"image": batch})
    with torch.inference_mode():
        expected, expected_members = (t.numpy() for t in graph(torch.from_numpy(batch)))
    assert probability.shape == (3,) and members_p.shape == (3, 3)
    np.testing.assert_allclose(probability, expected, atol=1e-4)
    np.testing.assert_allclose(members_p, expected_members, atol=1e-4)
    np.testing.assert_allclose(probability, members_p @ np.array(manifest.classifier.weights), atol=1e-5)


def test_export_verification_fails_loudly_on_a_wrong_graph(exported_models: Path, trained: dict) -> None:
    import torch

    from dernet.ensemble.predict import load_member
    from dernet.export.classifier import EnsembleGraph, _verify
    from dernet.export.verify import ExportVerificationError

    manifest = load_manifest(exported_models)
    members = [load_member(trained["runs"] / n / "checkpoints" / "best.ckpt") for n in manifest.classifier.members]
    with torch.no_grad():
        members[0].net.get_classifier().bias.add_(3.0)  # the PyTorch side no longer matches the file
    graph = EnsembleGraph(members, [64] * 3, list(manifest.classifier.weights), manifest.classifier.combine).eval()
    batch = np.random.default_rng(1).random((2, 1, 64, 64), dtype=np.float32)
    with pytest.raises(ExportVerificationError, match="differ by"):
        _verify(graph, manifest.path_of(manifest.classifier), batch)


def test_detector_export_reports_unknown_weights_as_a_user_error(tmp_path: Path, capsys) -> None:
    from yolo_spine.export import main as export_main

    assert export_main(["--weights", str(tmp_path / "missing.pt"), "--models", str(tmp_path)]) == 2
    assert "missing.pt: no such weights file" in capsys.readouterr().err


# --- gate ---------------------------------------------------------------------------------------------------------


def test_gate_reports_dicom_png_and_jpeg(exported_models: Path, inputs: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = gate_main(
        [str(inputs), "--models", str(exported_models), "--out", str(out), "--mode", "all", "--conf", "0.001"]
    )
    assert code == 0
    reports = _reports(out)
    assert set(reports) == {f"{p.name}.json" for p in inputs.iterdir()}
    manifest = load_manifest(exported_models)
    for report in reports.values():
        assert set(report) == REPORT_KEYS and report["status"] == "ok" and report["reason"] is None
        assert report["reason_code"] is None and isinstance(report["image"]["notes"], list)
        assert 0.0 <= report["abnormal_probability"] <= 1.0 and report["mode"] == "all"
        assert report["abnormal"] == (report["abnormal_probability"] >= report["threshold"])
        assert report["models"] == {"classifier": manifest.classifier.sha256, "detector": manifest.detector.sha256}
        assert set(report["timings_ms"]) == {"read", "preprocess", "classify", "detect", "total"}
        assert report["timings_ms"]["detect"] > 0  # mode all: the detector always runs
        width, height = report["image"]["width"], report["image"]["height"]
        for finding in report["findings"]:
            x1, y1, x2, y2 = finding["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert manifest.detector.class_names[finding["class_id"]] == finding["label"]
            assert finding["confidence"] >= 0.001
        assert Path(report["overlay"]).is_file() and max(cv2.imread(report["overlay"]).shape[:2]) >= 800
    dicom = reports["abnormal.dcm.json"]["image"]
    assert dicom["photometric"] in {"MONOCHROME1", "MONOCHROME2"} and max(dicom["width"], dicom["height"]) == 256
    assert reports["exported.png.json"]["image"]["width"] == reports["abnormal.dcm.json"]["image"]["width"]
    summary = (out / "summary.csv").read_text().splitlines()
    assert len(summary) == 1 + len(reports) and summary[0].startswith(
        "input,status,reason,reason_code,abnormal_probability"
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(inputs))]
    assert len(lines) == len(reports) and all(" p=" in line for line in lines)


def test_gate_mode_skips_the_detector_below_the_threshold(exported_models: Path, inputs: Path, tmp_path: Path) -> None:
    args = [str(inputs / "abnormal.dcm"), "--models", str(exported_models), "--conf", "0.001", "--json"]
    assert gate_main([*args, "--out", str(tmp_path / "high"), "--threshold", "1.0"]) == 0
    assert gate_main([*args, "--out", str(tmp_path / "low"), "--threshold", "0.0"]) == 0
    high = json.loads((tmp_path / "high" / "abnormal.dcm.json").read_text())
    low = json.loads((tmp_path / "low" / "abnormal.dcm.json").read_text())
    assert high["abnormal"] is False and high["findings"] == [] and high["timings_ms"]["detect"] < 1.0
    assert low["abnormal"] is True and low["timings_ms"]["detect"] > high["timings_ms"]["detect"]


class _FakeDetector:
    """An inference-model stand-in (dernet.deploy.engines) whose raw output holds two boxes, scoring 0.9 and 0.3."""

    def __init__(self, imgsz: int) -> None:
        self.raw = np.zeros((1, 11, 4), np.float32)
        self.raw[0, :4, 0] = [20, 20, 10, 10]
        self.raw[0, 4, 0] = 0.9  # class 0
        self.raw[0, :4, 1] = [40, 40, 8, 12]
        self.raw[0, 7, 1] = 0.3  # class 3

    def __call__(self, _array):
        return [self.raw]


@pytest.mark.parametrize(("mode", "expected"), [("gate", []), ("fusion", [0.9]), ("all", [0.9, 0.3])])
def test_modes_below_the_threshold(exported_models: Path, inputs: Path, mode: str, expected: list[float]) -> None:
    from dernet.deploy import Screener

    screener = Screener(exported_models)
    screener.detector = _FakeDetector(screener.manifest.detector.imgsz)
    result = screener.screen(inputs / "abnormal.dcm", mode=mode, threshold=1.0, conf=0.1)
    assert result.status == "ok" and result.abnormal is False
    assert [f.confidence for f in result.findings] == pytest.approx(expected)
    assert result.detector_ran == (mode != "gate")
    if expected:  # 10 px wide on the 64 px canvas: 10 * (original long side / 64) in the original image
        box = np.array(result.findings[0].box)
        assert result.findings[0].label == "Osteophytes" and (box >= 0).all()
        assert box[2] - box[0] == pytest.approx(10 * max(result.meta.width, result.meta.height) / 64, rel=0.05)


def _rejects(tmp_path: Path, phantom_dir: Path) -> dict[str, Path]:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "rejects"
    folder.mkdir()
    report = pydicom.Dataset()
    report.file_meta = FileMetaDataset()
    report.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    report.file_meta.MediaStorageSOPClassUID = report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"  # Basic Text SR
    report.file_meta.MediaStorageSOPInstanceUID = report.SOPInstanceUID = generate_uid()
    report.Modality = "SR"
    report.save_as(folder / "report.dcm", enforce_file_format=True)
    shutil.copyfile(get_testdata_file("rtdose.dcm", download=False), folder / "multiframe.dcm")
    shutil.copyfile(get_testdata_file("CT_small.dcm", download=False), folder / "ct.dcm")
    good = _phantom_files(phantom_dir, True, 1)[0]
    data = good.read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image\n")
    cv2.imwrite(str(folder / "blank.png"), np.full((300, 300), 128, np.uint8))
    cv2.imwrite(str(folder / "tiny.png"), np.random.default_rng(0).integers(0, 255, (40, 60), dtype=np.uint8))
    shutil.copyfile(good, folder / "good.dcm")
    return {p.name: p for p in folder.iterdir()}


def test_rejections_have_reasons_and_never_stop_the_others(
    exported_models: Path, phantom_dir: Path, tmp_path: Path, capsys
) -> None:
    files = _rejects(tmp_path, phantom_dir)
    out = tmp_path / "out"
    missing = tmp_path / "rejects" / "vanished.dcm"  # named on the command line, not there
    code = gate_main([str(tmp_path / "rejects"), str(missing), "--models", str(exported_models), "--out", str(out)])
    assert code == 1
    reports = {Path(r["input"]).name: r for r in _reports(out).values()}
    assert set(reports) == set(files) | {"vanished.dcm"}
    assert reports["good.dcm"]["status"] == "ok"
    expected = {
        "report.dcm": ("without pixel data", "no_pixel_data"),
        "multiframe.dcm": ("multi-frame", "multi_frame"),
        "ct.dcm": ("modality CT", "not_radiograph"),
        "truncated.dcm": ("truncated", "corrupt"),
        "notes.txt": ("not a DICOM, PNG or JPEG", "not_an_image"),
        "blank.png": ("near-constant", "near_constant"),
        "tiny.png": ("too small", "too_small"),
        "vanished.dcm": ("no such file", "not_found"),
    }
    for name, (phrase, code) in expected.items():
        assert reports[name]["status"] == "rejected" and phrase in reports[name]["reason"], (name, reports[name])
        assert reports[name]["reason_code"] == code, (name, reports[name])
        assert reports[name]["overlay"] is None and reports[name]["abnormal_probability"] is None
    assert "REJECTED" in capsys.readouterr().out


def test_gate_usage_errors_exit_2_with_one_line(exported_models: Path, inputs: Path, tmp_path: Path, capsys) -> None:
    assert gate_main([str(inputs), "--models", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest.json: no manifest; run `make export-onnx`" in err
    with pytest.raises(SystemExit) as exit_info:
        gate_main([str(inputs), "--models", str(exported_models), "--threshold", "1.5"])
    assert exit_info.value.code == 2


def test_a_bug_keeps_its_traceback_while_a_missing_file_is_one_line(exported_models: Path, inputs: Path) -> None:
    """A ValueError inside a command is a bug, not the user's mistake: non-zero, with its traceback."""
    bug = (
        "import sys; from dernet.deploy import screening\n"
        "def broken(*args, **kwargs): raise ValueError('an internal bug')\n"
        "screening.Screener.__init__ = broken\n"
        "from dernet.gate.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [str(inputs), "--models", str(exported_models)]
    done = subprocess.run([sys.executable, "-c", bug, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode not in (0, 2) and "Traceback" in done.stderr and "ValueError: an internal bug" in done.stderr
    missing = [sys.executable, "-m", "dernet.gate", str(inputs / "nowhere"), "--models", str(exported_models / "none")]
    done = subprocess.run(missing, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_same_file_names_in_two_folders_get_separate_reports(
    exported_models: Path, inputs: Path, tmp_path: Path
) -> None:
    for side in ("left", "right"):
        (tmp_path / side).mkdir()
        shutil.copyfile(inputs / "normal.dicom", tmp_path / side / "image.dcm")
    out = tmp_path / "out"
    paths = [str(tmp_path / "left" / "image.dcm"), str(tmp_path / "right" / "image.dcm")]
    assert gate_main([*paths, "--models", str(exported_models), "--out", str(out)]) == 0
    assert (out / "left" / "image.dcm.json").is_file() and (out / "right" / "image.dcm.json").is_file()


def test_output_folder_inside_the_input_folder_is_not_screened(exported_models: Path, inputs: Path, tmp_path) -> None:
    folder = tmp_path / "study"
    shutil.copytree(inputs, folder)
    args = [str(folder), "--models", str(exported_models), "--out", str(folder / "reports")]
    assert gate_main(args) == 0
    assert gate_main(args) == 0  # the first run's reports and overlays are not inputs of the second
    assert len(list((folder / "reports").glob("*.json"))) == len(list(inputs.iterdir()))


def test_rerun_overwrites_cleanly(exported_models: Path, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(inputs), "--models", str(exported_models), "--out", str(out), "--mode", "all", "--conf", "0.001"]
    assert gate_main(args) == 0
    first = {p.relative_to(out) for p in out.rglob("*")}
    assert gate_main(args) == 0
    assert {p.relative_to(out) for p in out.rglob("*")} == first
    assert not [p for p in out.rglob(".*")]  # no temp files
    for report in _reports(out).values():
        assert report["status"] == "ok"


def test_gate_never_imports_torch_or_ultralytics(exported_models: Path, inputs: Path, tmp_path: Path) -> None:
    code = (
        "import sys; from dernet.gate.cli import main; "
        f"rc = main([{str(inputs)!r}, '--models', {str(exported_models)!r}, '--out', {str(tmp_path)!r}]); "
        "heavy = sorted(m for m in ('torch', 'ultralytics', 'timm', 'pytorch_lightning') if m in sys.modules); "
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


# --- evaluation ---------------------------------------------------------------------------------------------------


def test_evaluate_scores_each_gate_mode(exported_models: Path, trained: dict, tmp_path: Path) -> None:
    from dernet.datasets.tables import read_table, split_rows
    from dernet.evaluation import FUSION_NAME, evaluate_exported

    result = evaluate_exported(exported_models, trained["prepared"], "test", tmp_path, bootstrap=50)
    assert result["images"] == len(split_rows(read_table(trained["prepared"]), "test"))
    assert set(result["detection"]) == {"gate", "fusion", "all"}
    assert {"ensemble", FUSION_NAME, "densenet121"} <= set(result["models"])
    maps = {mode: result["detection"][mode]["map50"] for mode in ("gate", "fusion", "all")}
    assert maps["all"] >= maps["gate"] - 1e-9  # gating only removes boxes; with no false ones this is an equality
    text = (tmp_path / "evaluation_test.md").read_text()
    assert "| gate |" in text and "| fusion |" in text and "| all |" in text and "AUROC" in text
    assert (tmp_path / "roc_test.png").is_file() and (tmp_path / "pr_test.png").is_file()
    assert (tmp_path / "confusion_test.png").stat().st_size > 5_000


def test_reports_alone_can_be_scored(exported_models: Path, phantom_dir: Path, tmp_path: Path) -> None:
    from dernet.evaluation.cli import main as evaluate_main

    out = tmp_path / "reports"
    args = [str(phantom_dir / "test_images"), "--models", str(exported_models), "--out", str(out), "--mode", "all"]
    assert gate_main([*args, "--conf", "0.001"]) == 0
    annotations = phantom_dir / "annotations" / "test.csv"
    assert evaluate_main(["--reports", str(out), "--annotations", str(annotations), "--bootstrap", "20"]) == 0
    result = json.loads((out / "evaluation" / "evaluation_reports.json").read_text())
    assert result["images"] == len(list((phantom_dir / "test_images").iterdir())) and result["missing_reports"] == 0
    assert 0.0 <= result["models"]["ensemble"]["metrics"]["auroc"] <= 1.0


def test_members_of_another_input_size_resize_inside_the_graph(tmp_path: Path) -> None:
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from torch import nn

    from dernet.export.classifier import OPSET, EnsembleGraph

    class SizeProbe(nn.Module):
        """Logit = mean of the input, plus a term that sees the input size (so a wrong resize shows)."""

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return images.mean(dim=(1, 2, 3)) * 4 - 2 + images[:, 0, -1, -1]

    graph = EnsembleGraph([SizeProbe(), SizeProbe()], [48, 32], [0.75, 0.25], "probability").eval()
    batch = np.random.default_rng(2).random((2, 1, 48, 48), dtype=np.float32)
    path = tmp_path / "graph.onnx"
    torch.onnx.export(graph, (torch.from_numpy(batch),), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["image"], dynamic_axes={"image": {0: "batch"}})  # fmt: skip
    probability, members = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"image": batch}
    )
    small = F.interpolate(torch.from_numpy(batch), size=(32, 32), mode="bilinear", align_corners=False)
    expected_small = torch.sigmoid(SizeProbe()(small)).numpy()
    np.testing.assert_allclose(members[:, 1], expected_small, atol=1e-5)
    np.testing.assert_allclose(probability, 0.75 * members[:, 0] + 0.25 * members[:, 1], atol=1e-6)


def test_the_export_warns_about_members_trained_at_another_size() -> None:
    from dernet.export.classifier import ResizedMemberWarning, warn_about_resized_members

    with pytest.warns(ResizedMemberWarning, match=r"ens.json: b \(128 px\) will get the 160 px input resized"):
        warn_about_resized_members(Path("ens.json"), {"a": 160, "b": 128, "c": 160})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_about_resized_members(Path("ens.json"), {"a": 160, "b": 160})  # one size: silent


def test_five_members_export_and_screen_with_a_fitted_vote(
    trained: dict, exported_models: Path, inputs: Path, tmp_path: Path
) -> None:
    """The graph, the manifest and the gate take any number of members (VinDr-SpineXR's recipe has three others)."""
    import dataclasses

    import yaml

    from dernet.config import ConfigError
    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.fit_ensemble import fit_ensemble
    from dernet.export.classifier import export_classifier

    checkpoints = [str(trained["runs"] / n / "checkpoints" / "best.ckpt") for n in ("densenet121", "resnet50")]
    names = ["densenet121", "densenet169", "densenet201", "resnet50", "resnet50_b"]  # a checkpoint may serve twice
    config = yaml.safe_load(trained["ensemble_yaml"].read_text())
    config.update(members={n: checkpoints[i % 2] for i, n in enumerate(names)}, weights="fit", combine="logit")
    path = tmp_path / "five.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="316,251 weightings; raise weight_step"):
        load_ensemble_config(path)  # the 0.02 grid is too fine for five members: one line says so
    config["weight_step"] = 0.1
    path.write_text(yaml.safe_dump(config))
    record = fit_ensemble(dataclasses.replace(load_ensemble_config(path), output=str(tmp_path / "five.json")))
    assert len(record.weights) == 5 and sum(record.weights) == pytest.approx(1.0)

    models = tmp_path / "models"
    shutil.copytree(exported_models, models)  # the detector stays; the classifier is replaced
    spec = export_classifier(tmp_path / "five.json", trained["prepared"], models)
    manifest = load_manifest(models)
    assert manifest.classifier.members == tuple(names) and len(manifest.classifier.member_thresholds) == 5
    assert spec.verified_max_abs_diff <= 1e-4

    from dernet.deploy.screening import Screener

    with Screener(models) as screener:
        result = screener.screen(inputs / "abnormal.dcm", mode="all")
    assert list(result.member_probabilities) == names
    members = np.array([result.member_probabilities[n] for n in names])
    np.testing.assert_allclose(members[0], members[2], atol=1e-6)  # the same checkpoint, the same probability
    logits = np.log(members / (1 - members)) @ np.array(manifest.classifier.weights)
    assert result.probability == pytest.approx(1 / (1 + np.exp(-logits)), abs=1e-5)


def test_a_lesion_type_head_exports_beside_the_vote_and_the_gate_reports_it(
    trained: dict, exported_models: Path, inputs: Path, tmp_path: Path
) -> None:
    import dataclasses

    from dernet.classes import CLASS_NAMES
    from dernet.ensemble.cli import main as dernet_main
    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.fit_ensemble import fit_ensemble
    from dernet.errors import UsageError
    from dernet.export.classifier import export_classifier

    from .conftest import ROOT, quick

    args = ["fit", "--config", str(ROOT / "configs/demo/lesion_types/multilabel_resnet18.yaml"),
            *quick(trained["prepared"], tmp_path), "--model.task", "multilabel"]  # fmt: skip
    assert dernet_main(args) == 0
    lesion_ckpt = tmp_path / "multilabel_resnet18" / "checkpoints" / "best.ckpt"
    config = dataclasses.replace(load_ensemble_config(trained["ensemble_yaml"]), lesion_types=str(lesion_ckpt),
                                 output=str(tmp_path / "ensemble.json"))  # fmt: skip
    record = fit_ensemble(config)
    assert record.lesion_types.classes == CLASS_NAMES and len(record.lesion_types.thresholds) == 7
    binary = config.members["resnet50"]
    with pytest.raises(UsageError, match=f"{binary}: lesion_types needs a multilabel member .* not binary"):
        fit_ensemble(dataclasses.replace(config, lesion_types=binary))

    models = tmp_path / "models"
    shutil.copytree(exported_models, models)
    spec = export_classifier(tmp_path / "ensemble.json", trained["prepared"], models)
    manifest = load_manifest(models)
    assert spec.verified_max_abs_diff <= 1e-4  # all three outputs, ONNX Runtime against torch
    assert manifest.classifier.outputs == ("probability", "member_probabilities", "lesion_probabilities")
    assert manifest.classifier.lesion_classes == CLASS_NAMES
    assert manifest.classifier.lesion_thresholds == record.lesion_types.thresholds

    out = tmp_path / "out"
    assert gate_main([str(inputs / "abnormal.dcm"), "--models", str(models), "--out", str(out)]) == 0
    report = _reports(out)["abnormal.dcm.json"]
    assert set(report) == REPORT_KEYS | {"lesion_types"}
    assert [row["label"] for row in report["lesion_types"]] == list(CLASS_NAMES)
    for row, chosen in zip(report["lesion_types"], record.lesion_types.thresholds, strict=True):
        assert 0.0 <= row["probability"] <= 1.0 and row["threshold"] == (0.5 if chosen is None else chosen)
        assert row["likely"] == (row["probability"] >= row["threshold"])
    plain = tmp_path / "plain"
    assert gate_main([str(inputs / "abnormal.dcm"), "--models", str(exported_models), "--out", str(plain)]) == 0
    assert "lesion_types" not in _reports(plain)["abnormal.dcm.json"]  # no head, no key
