"""The torchvision detectors: training through the real CLI, the canvas and its boxes, the evaluation protocol (and
its agreement with torchmetrics), export verification, and the gate running the exported graph."""

from __future__ import annotations

import json
import shutil
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dernet.classes import CLASS_NAMES
from dernet.datasets.labels import read_yolo_boxes
from dernet.datasets.tables import read_table, split_rows
from dernet.deploy.detection import Detections
from dernet.deploy.screening import Screener
from dernet.detectors.cli import main as detectors_main
from dernet.detectors.data import canvas_sample
from dernet.detectors.evaluate import evaluate_checkpoint, load_detector, predict_split, torchmetrics_map50
from dernet.detectors.export import export_torchvision_detector
from dernet.detectors.models import build_detector
from dernet.ensemble.backbones import PretrainedWeightsWarning
from dernet.export.verify import match_detections
from dernet.imaging import canvas_to_original
from dernet.imaging.transforms import DEFAULT_CLAHE
from dernet.metrics import DetectionSample, average_precision_50

from .conftest import ROOT

DEMO_CONFIGS = {
    "faster_rcnn_v2": ROOT / "configs/demo/detectors/faster_rcnn_r18_fpn.yaml",
    "retinanet_v2": ROOT / "configs/demo/detectors/retinanet_r18_fpn.yaml",
}


@pytest.fixture(scope="session")
def trained_detectors(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each demo config trained two steps at 64 px through the real CLI; arch -> best.ckpt."""
    runs = tmp_path_factory.mktemp("detectors")
    checkpoints = {}
    for arch, config in DEMO_CONFIGS.items():
        args = ["fit", "--config", str(config), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                "--trainer.limit_val_batches", "2", "--trainer.accelerator", "cpu",
                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                "--trainer.logger.init_args.save_dir", str(runs), "--model.imgsz", "64",
                "--model.train_sizes", "[48, 64]", "--data.batch_size", "4", "--data.num_workers", "0",
                "--data.data_dir", str(prepared_dir)]  # fmt: skip
        assert detectors_main(args) == 0
        checkpoints[arch] = runs / config.stem / "checkpoints" / "best.ckpt"
    return checkpoints


def test_training_writes_a_checkpoint_with_the_recipe_and_the_data_clahe(trained_detectors: dict[str, Path]) -> None:
    for arch, checkpoint in trained_detectors.items():
        assert checkpoint.is_file() and (checkpoint.parent / "last.ckpt").is_file()
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        assert saved["hyper_parameters"]["arch"] == arch and saved["hyper_parameters"]["imgsz"] == 64
        assert saved["hyper_parameters"]["batch_size"] == 4  # linked from the data module, for the lr scaling
        assert saved["datamodule_hyper_parameters"]["clahe_clip_limit"] == DEFAULT_CLAHE.clip_limit
        assert "val_map50" in saved["callbacks"][next(k for k in saved["callbacks"] if "ModelCheckpoint" in k)][
            "monitor"
        ]
        module = load_detector(checkpoint)
        assert module.model.transform.min_size[-1] == 64  # evaluation and export run at imgsz


def test_canvas_boxes_map_back_to_the_labels_in_original_pixels(prepared_dir: Path) -> None:
    rows = split_rows(read_table(prepared_dir), "train")
    row = rows[rows.abnormal == 1].iloc[0]
    canvas, boxes, classes = canvas_sample(prepared_dir, row, 96, DEFAULT_CLAHE)
    assert canvas.shape == (3, 96, 96) and canvas.dtype == np.float32 and 0 <= canvas.min() <= canvas.max() <= 1
    from dernet.datasets.cached import read_cached_image
    from dernet.imaging import detector_array

    _, geometry, image_size = detector_array(read_cached_image(prepared_dir / row.path), 96, DEFAULT_CLAHE)
    label = prepared_dir / "labels" / row.split / f"{row.image_id}.txt"
    expected, expected_classes = read_yolo_boxes(label, row.width, row.height)
    back = canvas_to_original(boxes, geometry, image_size, (row.width, row.height))
    assert len(boxes) > 0 and np.array_equal(classes, expected_classes)
    np.testing.assert_allclose(back, expected, atol=1e-3 * max(row.width, row.height))


def test_our_map_agrees_with_torchmetrics_on_the_same_boxes() -> None:
    """The cross-check HealNNet's readers need: pycocotools through dernet.metrics vs torchmetrics, on predictions
    with hits, misses, duplicates, wrong classes and false positives on normal images."""
    rng = np.random.default_rng(3)
    samples = []
    for index in range(30):
        count = int(rng.integers(0, 4))
        xy = rng.uniform(0, 400, (count, 2))
        gt = np.column_stack([xy, xy + rng.uniform(20, 80, (count, 2))])
        gt_classes = rng.integers(0, len(CLASS_NAMES), count)
        jitter = gt + rng.normal(0, 6, gt.shape)
        false_xy = rng.uniform(0, 400, (3, 2))
        false = np.column_stack([false_xy, false_xy + 40])
        boxes = np.concatenate([jitter, jitter[:1] + 3, false])
        classes = np.concatenate([gt_classes, gt_classes[:1], rng.integers(0, len(CLASS_NAMES), 3)])
        classes[: count // 2] = (classes[: count // 2] + int(index % 3 == 0)) % len(CLASS_NAMES)
        scores = rng.uniform(0.01, 1, len(boxes))
        samples.append(DetectionSample(f"i{index}", 512, 512, gt, gt_classes, boxes, scores, classes))
    ours = average_precision_50(samples, CLASS_NAMES)["map50"]
    assert 0.2 < ours < 0.95  # neither trivial nor perfect: the comparison means something
    assert torchmetrics_map50(samples) == pytest.approx(ours, abs=1e-6)


def test_evaluation_follows_the_protocol_and_writes_its_tables(
    trained_detectors: dict[str, Path], prepared_dir: Path
) -> None:
    checkpoint = trained_detectors["faster_rcnn_v2"]
    result = evaluate_checkpoint(checkpoint, prepared_dir, "val", progress=False)
    val_rows = split_rows(read_table(prepared_dir), "val")
    assert result["images"] == len(val_rows) and result["conf"] == 0.001 and result["kind"] == "faster_rcnn_v2"
    assert list(result["ap50"]) == list(CLASS_NAMES)
    assert result["torchmetrics_map50"] == pytest.approx(result["map50"], abs=1e-6)
    run_dir = checkpoint.parent.parent
    assert json.loads((run_dir / "evaluation_val.json").read_text())["map50"] == result["map50"]
    assert "LT2" in (run_dir / "evaluation_val.md").read_text() and (run_dir / "pr_val.png").is_file()


@pytest.fixture(scope="session")
def exported_detectors(
    trained_detectors: dict[str, Path], exported_models: Path, prepared_dir: Path, tmp_path_factory
) -> dict[str, Path]:
    """The shared export (classifier + YOLO) copied once per torchvision detector, which then replaces YOLO there."""
    folders = {}
    for arch, checkpoint in trained_detectors.items():
        folder = tmp_path_factory.mktemp(f"export_{arch}")
        shutil.copytree(exported_models, folder, dirs_exist_ok=True)
        export_torchvision_detector(checkpoint, prepared_dir, folder, conf=0.01)
        folders[arch] = folder
    return folders


@pytest.mark.parametrize("arch", list(DEMO_CONFIGS))
def test_the_gate_runs_the_exported_detector_as_pytorch_does(
    arch: str, exported_detectors: dict[str, Path], trained_detectors: dict[str, Path], prepared_dir: Path,
    phantom_dir: Path
) -> None:  # fmt: skip
    folder = exported_detectors[arch]
    manifest = json.loads((folder / "manifest.json").read_text())
    detector = manifest["detector"]
    assert detector["kind"] == arch and detector["file"] == f"{arch}.onnx" and detector["nms_in_graph"]
    assert detector["verified_boxes"] >= 0 and detector["imgsz"] == 64 and detector["conf"] == 0.01
    assert (folder / "yolo_spine.onnx").is_file() and manifest["classifier"]["file"] == "dernet.onnx"

    module = load_detector(trained_detectors[arch])
    rows = split_rows(read_table(prepared_dir), "test").head(3)
    expected = predict_split(module, prepared_dir, "test", DEFAULT_CLAHE, conf=0.001, progress=False)
    with Screener(folder, variant="fp32") as screener:
        for row, want in zip(rows.itertuples(), expected, strict=False):
            got = screener.screen(phantom_dir / "test_images" / f"{row.image_id}.dicom", mode="all", conf=0.001)
            assert got.status == "ok", got.reason
            found = Detections(
                np.array([f.box for f in got.findings], np.float32).reshape(-1, 4),
                np.array([f.confidence for f in got.findings], np.float32),
                np.array([f.class_id for f in got.findings], np.int64),
            )
            # the same scores, best first: an untrained model's hundreds of near-equal low scores may be kept in
            # either runtime's order, so a box or two more or less at the end is not a difference
            assert abs(len(found) - len(want.scores)) <= max(2, len(want.scores) // 50) and len(found) <= 300
            common = min(len(found), len(want.scores))
            np.testing.assert_allclose(found.scores[:common], np.sort(want.scores)[::-1][:common], atol=2e-3)
            # and every box clear of those near-equals has its twin (class, IoU >= 0.99, score within 1e-3)
            pytorch = Detections(want.boxes.astype(np.float32), want.scores.astype(np.float32), want.classes)
            clear = float(np.median(want.scores)) + 0.01 if len(want.scores) else 1.0
            match_detections(pytorch, found, clear, "gate")
            match_detections(found, pytorch, clear, "gate")


def test_a_missing_checkpoint_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from dernet.detectors.evaluate import main as evaluate_main
    from dernet.detectors.export import main as export_main

    for main in (evaluate_main, export_main):
        assert main(["--checkpoint", str(tmp_path / "none.ckpt"), "--data", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "none.ckpt" in err and "make train-detector" in err
        assert len(err.splitlines()) == 1


def test_coco_weights_unreachable_warn_once_and_start_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never the network in a test: torch.hub's download is made to fail as it does offline."""

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_detector("retinanet", "resnet50", 64, pretrained="coco")
    found = [w for w in caught if issubclass(w.category, PretrainedWeightsWarning)]
    assert len(found) == 1 and "random weights" in str(found[0].message)
    assert model.head.classification_head.num_classes == len(CLASS_NAMES) + 1  # COCO's 91 replaced by ours


def test_pretrained_path_loads_a_saved_detector(tmp_path: Path) -> None:
    source = build_detector("faster_rcnn", "resnet18", 64)
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    loaded = build_detector("faster_rcnn", "resnet18", 64, pretrained_path=str(tmp_path / "weights.pt"))
    for name, tensor in source.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    from dernet.config import ConfigError
    from dernet.ensemble.backbones import PretrainedWeightsWarning

    head = {k: v for k, v in source.state_dict().items() if not k.startswith("roi_heads.box_predictor")}
    head["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(91, 1024)  # another class count (COCO's 91)
    torch.save(head, tmp_path / "other_classes.pt")
    with pytest.warns(PretrainedWeightsWarning, match=r"other_classes.pt: 4 head tensors do not fit"):
        other = build_detector("faster_rcnn", "resnet18", 64, pretrained_path=str(tmp_path / "other_classes.pt"))
    assert torch.equal(other.backbone.body.conv1.weight, source.backbone.body.conv1.weight)
    torch.save({k: v for k, v in head.items() if k.startswith("backbone.")}, tmp_path / "backbone_only.pt")
    with pytest.warns(PretrainedWeightsWarning, match=r"backbone_only.pt: 14 head tensors do not fit"):
        build_detector("faster_rcnn", "resnet18", 64, pretrained_path=str(tmp_path / "backbone_only.pt"))
    retina = build_detector("retinanet", "resnet18", 64)
    torch.save(retina.state_dict(), tmp_path / "retinanet.pt")
    with pytest.raises(ConfigError, match=r"retinanet.pt: these weights do not fit this detector's backbone"):
        build_detector("faster_rcnn", "resnet34", 64, pretrained_path=str(tmp_path / "retinanet.pt"))


def test_bad_recipes_name_the_key() -> None:
    from dernet.config import ConfigError

    with pytest.raises(ConfigError, match="arch must be one of"):
        build_detector("sparse_rcnn", "resnet50", 64)
    with pytest.raises(ConfigError, match="resnet50 only"):
        build_detector("faster_rcnn", "resnet18", 64, pretrained="coco")
    with pytest.raises(ConfigError, match="at most imgsz"):
        build_detector("faster_rcnn", "resnet18", 64, train_sizes=(64, 96))
    with pytest.raises(ConfigError, match="fpn_channels 64"):
        build_detector("retinanet", "resnet50", 64, fpn_channels=64)


def test_small_v2_detectors_are_narrow_and_normalised_throughout() -> None:
    """The demo's design: a 64-wide pyramid, batch norm in it and in Faster R-CNN's heads, group norm in RetinaNet's
    (torchvision's v2 heads), so random weights learn in a few hundred CPU steps."""
    frcnn = build_detector("faster_rcnn_v2", "resnet18", 64, fpn_channels=64, anchor_sizes=(8, 16, 32, 64, 128))
    def has(module: nn.Module, norm: type) -> bool:
        return any(isinstance(m, norm) for m in module.modules())

    assert frcnn.backbone.out_channels == 64 and has(frcnn.backbone.fpn, nn.BatchNorm2d)
    assert len(frcnn.rpn.head.conv) == 2 and has(frcnn.roi_heads.box_head, nn.BatchNorm2d)
    retina = build_detector("retinanet_v2", "resnet18", 64, fpn_channels=64)
    assert retina.backbone.out_channels == 64 and retina.head.regression_head._loss_type == "giou"
    assert has(retina.head.classification_head, nn.GroupNorm)
    plain = build_detector("retinanet", "resnet18", 64)
    assert plain.backbone.out_channels == 256 and not has(plain, nn.GroupNorm)
    frcnn.eval(), retina.eval()
    with torch.no_grad():
        for model in (frcnn, retina):
            (found,) = model([torch.rand(3, 64, 64)])
            assert found["boxes"].shape[1] == 4 and len(found["boxes"]) <= 300


def test_quantizing_a_torchvision_detector_is_refused_in_one_line(
    exported_detectors: dict[str, Path], prepared_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    from dernet.export.quantize import main as quantize_main

    manifest = (exported_detectors["retinanet_v2"] / "manifest.json").read_text()
    args = ["--models", str(exported_detectors["retinanet_v2"]), "--data", str(prepared_dir), "--variants", "int8"]
    assert quantize_main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "YOLO detectors only" in err and "retinanet" in err and len(err.splitlines()) == 1
    assert (exported_detectors["retinanet_v2"] / "manifest.json").read_text() == manifest  # nothing changed


def test_wbf_averages_overlapping_boxes_by_weight_and_keeps_the_rest() -> None:
    from dernet.deploy.fusion import fuse_detections

    a = Detections(np.array([[10, 10, 50, 50], [200, 200, 240, 240]], np.float32), np.array([0.9, 0.6], np.float32),
                   np.array([0, 3]))  # fmt: skip
    b = Detections(np.array([[14, 14, 54, 54]], np.float32), np.array([0.9], np.float32), np.array([0]))
    fused = fuse_detections([a, b], (256, 256), weights=(3.0, 1.0), iou_thr=0.5)
    assert len(fused) == 2 and list(fused.classes) == [0, 3] and np.all(np.diff(fused.scores) <= 0)
    np.testing.assert_allclose(fused.boxes[0], [11, 11, 51, 51], atol=0.01)  # 3:1 towards a's box
    assert fused.scores[1] < 0.6  # found by one model of two: WBF lowers its confidence
    assert len(fuse_detections([a, b], (256, 256), (1.0, 1.0), iou_thr=0.95)) == 3  # too far apart to merge


def test_comparison_table_fuses_with_weights_chosen_on_val_only(
    trained_detectors: dict[str, Path], exported_models: Path, prepared_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    from dernet.detectors import compare

    splits_seen: list[set[str]] = []
    choose = compare.choose_fusion

    def spy(val_per_model):
        splits_seen.append({s.image_id for samples in val_per_model for s in samples})
        return choose(val_per_model)

    monkeypatch.setattr(compare, "choose_fusion", spy)
    from dernet.detectors.module import LesionDetector

    loads: list[str] = []
    load = LesionDetector.load_from_checkpoint

    def counted(path, *args, **kwargs):
        loads.append(str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(LesionDetector, "load_from_checkpoint", counted)
    checkpoints = list(trained_detectors.values())
    args = ["--detectors", *map(str, checkpoints), "--data", str(prepared_dir), "--split", "test",
            "--out", str(tmp_path), "--no-latency"]  # fmt: skip
    assert compare.main([*args, "--models", str(exported_models)]) == 0
    assert sorted(loads) == sorted(map(str, checkpoints))  # each read once: both splits and the export reuse it
    table = read_table(prepared_dir)
    assert splits_seen == [set(split_rows(table, "val").image_id)]  # chosen on val, never on test
    result = json.loads((tmp_path / "comparison_test.json").read_text())
    assert list(result["map50"]) == ["Faster R-CNN v2", "RetinaNet v2", "WBF (all)"]
    assert result["images"] == len(split_rows(table, "test")) and result["fusion"]["chosen_on"] == "val"
    assert "LT2 Disc space narrowing" in (tmp_path / "comparison_test.md").read_text()
    # the best single detector through the gate's three modes, with the export's classifier (its ONNX graphs)
    gate = result["gate_modes"]
    best = max(list(result["map50"])[:2], key=result["map50"].get)
    assert gate["model"] == best and list(gate["modes"]) == ["gate", "fusion", "all"]
    assert gate["modes"]["all"]["map50"] == pytest.approx(result["map50"][best], abs=0.02)  # ONNX as PyTorch
    assert "gate's three modes" in (tmp_path / "comparison_test.md").read_text()
    assert compare.main([*args[:-3], "--split", "val", "--out", str(tmp_path)]) == 2  # reporting val is refused
    assert compare.main([*args, "--models", str(tmp_path / "no-export")]) == 2  # at once, before any prediction
    assert len(splits_seen) == 1


def test_box_fusion_in_the_gate_is_chosen_on_val_and_fuses_every_exported_detector(
    exported_detectors: dict[str, Path], trained_detectors: dict[str, Path], prepared_dir: Path,
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:  # fmt: skip
    from dernet.deploy.fusion import fuse_detections
    from dernet.detectors.export import main as export_main
    from dernet.detectors.fuse import main as fuse_main
    from dernet.gate.cli import main as gate_main

    folder = tmp_path / "export"
    shutil.copytree(exported_detectors["faster_rcnn_v2"], folder)  # Faster R-CNN is its detector; add RetinaNet
    dicom = phantom_dir / "test_images" / f"{split_rows(read_table(prepared_dir), 'test').image_id.iloc[0]}.dicom"
    assert gate_main([str(dicom), "--models", str(folder), "--out", str(tmp_path / "no"), "--wbf"]) == 2
    assert "no box fusion chosen" in capsys.readouterr().err
    assert export_main(["--checkpoint", str(trained_detectors["retinanet_v2"]), "--data", str(prepared_dir),
                        "--models", str(folder), "--conf", "0.01", "--add"]) == 0  # fmt: skip
    assert fuse_main(["--models", str(folder), "--data", str(prepared_dir)]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [d["kind"] for d in manifest["detectors"]] == ["retinanet_v2"]
    assert manifest["detector"]["kind"] == "faster_rcnn_v2"
    fusion = manifest["fusion"]
    assert len(fusion["weights"]) == 2 and fusion["chosen_on"]["split"] == "val"
    assert fusion["chosen_on"]["images"] == len(split_rows(read_table(prepared_dir), "val"))

    with Screener(folder, variant="fp32", fuse=True) as fused, Screener(folder, variant="fp32") as single:
        got = fused.screen(dicom, mode="all", conf=0.001)
        alone = single.screen(dicom, mode="all", conf=0.001)
        prepared = single.prepare(dicom, mode="all")
        per_model = single.detections_per_model(prepared, fusion["skip_box_thr"])
    assert got.status == "ok" and len(per_model) == 2
    expected = fuse_detections(per_model, (got.meta.width, got.meta.height), fusion["weights"], fusion["iou_thr"])
    assert [f.confidence for f in got.findings] == pytest.approx(expected.scores[expected.scores >= 0.001], abs=1e-4)
    assert [f.confidence for f in alone.findings] != [f.confidence for f in got.findings]  # fusion changed them

    out = tmp_path / "gate"
    assert gate_main([str(dicom), "--models", str(folder), "--out", str(out), "--wbf", "--mode", "all"]) in (0, 1)
    report = json.loads(next(out.rglob("*.json")).read_text())
    assert report["status"] == "ok"  # and it names every model that made its boxes
    assert report["models"]["detector_2"] == manifest["detectors"][0]["sha256"] and "detector" in report["models"]
