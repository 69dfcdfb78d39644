"""Grad-CAM explanations (dernet.explain) on the tiny shared ensemble, and their use by the gate and the web API."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dernet.ensemble.backbones import create_backbone
from dernet.explain import TARGET_LAYERS, Explainer, combine_heatmaps, target_layer
from dernet.explain.cli import main as explain_main
from dernet.imaging import letterbox

from .test_export_gate import _phantom_files

BACKBONES = {"densenet121": "features.norm5", "tf_efficientnetv2_s": "bn2", "resnet50": "layer4",
             "convnext_tiny": "stages.3"}  # fmt: skip


@pytest.fixture(scope="module")
def explainer(fitted_ensemble: Path) -> Explainer:
    return Explainer(fitted_ensemble)


@pytest.fixture(scope="module")
def abnormal_dicom(phantom_dir: Path) -> Path:
    return _phantom_files(phantom_dir, True, 1)[0]


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_target_layer_is_the_last_feature_map_before_pooling(backbone: str) -> None:
    net = create_backbone(backbone, pretrained=False, pretrained_path=None, in_chans=1).eval()
    layer = target_layer(net, backbone)
    assert layer is net.get_submodule(BACKBONES[backbone])
    seen = {}

    def record(_module, _inputs, output) -> None:
        seen["shape"] = tuple(output.shape)

    handle = layer.register_forward_hook(record)
    with torch.no_grad():
        net(torch.zeros(1, 1, 64, 64))
    handle.remove()
    # stride 32 and the channel count the classifier head pools
    assert seen["shape"] == (1, net.num_features, 2, 2)


def test_target_layer_falls_back_to_timm_feature_info() -> None:
    assert not any(family in "mobilenetv3_small_050" for family in TARGET_LAYERS)
    net = create_backbone("mobilenetv3_small_050", pretrained=False, pretrained_path=None, in_chans=1)
    assert target_layer(net, "mobilenetv3_small_050") is net.get_submodule(net.feature_info[-1]["module"])


def test_heatmaps_have_the_canvas_shape_and_unit_range(explainer: Explainer, abnormal_dicom: Path) -> None:
    explanation = explainer.explain(abnormal_dicom)
    assert set(explanation.member_heatmaps) == {"densenet121", "tf_efficientnetv2_s", "resnet50"}
    for heatmap in [*explanation.member_heatmaps.values(), explanation.heatmap]:
        assert heatmap.shape == (64, 64) and heatmap.dtype == np.float32
        assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0
    assert explanation.canvas.shape == (64, 64) and explanation.canvas.dtype == np.uint8


def test_heatmaps_map_back_to_the_original_geometry(explainer: Explainer, abnormal_dicom: Path) -> None:
    windowed, meta = explainer.read(abnormal_dicom)
    explanation = explainer.explain_windowed(windowed)
    on_original = explanation.on_image(explanation.heatmap, (meta.width, meta.height))
    assert on_original.shape == (meta.height, meta.width)
    # the letterbox crop holds exactly the image: the canvas cropped and resized back is the model input
    cropped = explanation.geometry.crop(explanation.canvas, explanation.image_size)
    assert cropped.shape == explanation.image_size[::-1] and (cropped > 0).mean() > 0.99


def test_letterbox_crop_undoes_the_padding() -> None:
    image = np.arange(30 * 50, dtype=np.uint8).reshape(30, 50)
    canvas, geometry = letterbox(image, 50, pad_value=0)
    assert canvas.shape == (50, 50)
    np.testing.assert_array_equal(geometry.crop(canvas, (50, 30)), image)


def test_combination_uses_the_voting_weights(explainer: Explainer, abnormal_dicom: Path, fitted_ensemble: Path) -> None:
    saved = json.loads(fitted_ensemble.read_text())
    weights = np.array(saved["weights"]) / np.sum(saved["weights"])
    explanation = explainer.explain(abnormal_dicom)
    assert list(explanation.weights.values()) == pytest.approx(weights.tolist())
    expected = sum(w * explanation.member_heatmaps[m["name"]] for w, m in zip(weights, saved["members"], strict=True))
    np.testing.assert_allclose(explanation.heatmap, expected, atol=1e-6)
    probs = np.array(list(explanation.member_probabilities.values()))
    assert explanation.probability == pytest.approx(float(probs @ weights), abs=1e-6)
    ones, zeros = np.ones((4, 4)), np.zeros((4, 4))
    np.testing.assert_allclose(combine_heatmaps([ones, zeros], [3, 1]), np.full((4, 4), 0.75))
    with pytest.raises(ValueError, match="one non-negative weight per heatmap"):
        combine_heatmaps([ones, zeros], [1.0])


def test_explainer_probability_is_the_exported_classifiers(
    explainer: Explainer, exported_models: Path, abnormal_dicom: Path
) -> None:
    from dernet.deploy import Screener

    screening = Screener(exported_models).screen(abnormal_dicom)
    assert explainer.explain(abnormal_dicom).probability == pytest.approx(screening.probability, abs=1e-4)


@pytest.mark.parametrize("method", ["gradcam++", "eigencam"])
def test_other_cam_methods(fitted_ensemble: Path, abnormal_dicom: Path, method: str) -> None:
    explanation = Explainer(fitted_ensemble, method=method).explain(abnormal_dicom)
    assert explanation.method == method and explanation.heatmap.shape == (64, 64)
    assert 0.0 <= explanation.heatmap.min() and explanation.heatmap.max() <= 1.0


def test_cli_writes_a_panel_and_a_heatmap(fitted_ensemble: Path, abnormal_dicom: Path, tmp_path: Path, capsys) -> None:
    assert explain_main([str(abnormal_dicom), "--ensemble", str(fitted_ensemble), "--out", str(tmp_path)]) == 0
    stem = abnormal_dicom.name
    panel = cv2.imread(str(tmp_path / f"{stem}.explain.png"))
    heatmap = cv2.imread(str(tmp_path / f"{stem}.heatmap.png"))
    assert panel is not None and panel.shape[1] > panel.shape[0]  # four tiles side by side
    assert heatmap is not None and max(heatmap.shape[:2]) == 128  # the windowed image at the cache size
    assert "p=" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*"))  # atomic writes leave no temp files


def test_cli_rejects_a_bad_input_with_the_readers_reason(
    fitted_ensemble: Path, abnormal_dicom: Path, tmp_path: Path, capsys
) -> None:
    bad = tmp_path / "notes.dcm"
    bad.write_text("not an image")
    out = tmp_path / "out"
    rc = explain_main([str(bad), str(abnormal_dicom), "--ensemble", str(fitted_ensemble), "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{bad}: not a DICOM, PNG or JPEG file" in err and "Traceback" not in err
    assert list(out.rglob(f"{abnormal_dicom.name}.explain.png"))  # the good input was still explained


def test_cli_without_a_fitted_ensemble_is_a_usage_error(abnormal_dicom: Path, tmp_path: Path, capsys) -> None:
    assert explain_main([str(abnormal_dicom), "--ensemble", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "no fitted ensemble" in capsys.readouterr().err


def test_gate_explain_adds_the_heatmap_to_each_report(
    exported_models: Path, fitted_ensemble: Path, phantom_dir: Path, tmp_path: Path
) -> None:
    from dernet.gate.cli import main as gate_main

    inputs = _phantom_files(phantom_dir, True, 1) + _phantom_files(phantom_dir, False, 1)
    args = [*map(str, inputs), "--models", str(exported_models), "--out", str(tmp_path), "--mode", "all"]
    assert gate_main([*args, "--explain", "--ensemble", str(fitted_ensemble)]) == 0
    for path in inputs:
        report = json.loads((tmp_path / f"{path.name}.json").read_text())
        overlay, heatmap = cv2.imread(report["overlay"]), cv2.imread(report["heatmap"])
        assert heatmap is not None and heatmap.shape == overlay.shape and not np.array_equal(heatmap, overlay)
        assert report["timings_ms"]["explain"] > 0
    assert gate_main(args) == 0  # without --explain: no heatmap, and none left from the run before
    report = json.loads((tmp_path / f"{inputs[0].name}.json").read_text())
    assert report["heatmap"] is None and not (tmp_path / f"{inputs[0].name}.heatmap.png").exists()


def test_web_api_returns_a_heatmap_when_started_with_checkpoints(
    exported_models: Path, fitted_ensemble: Path, abnormal_dicom: Path
) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from dernet.web.app import create_app

    client = TestClient(create_app(exported_models, checkpoints=fitted_ensemble, isolation=None))
    assert client.get("/api/health").json()["explain"] is True
    with open(abnormal_dicom, "rb") as handle:
        report = client.post("/api/analyze", files={"file": ("a.dcm", handle)}, data={"mode": "all"}).json()
    decoded = [
        cv2.imdecode(np.frombuffer(base64.b64decode(report[key]), np.uint8), cv2.IMREAD_COLOR)
        for key in ("overlay_png_base64", "heatmap_png_base64")
    ]
    assert decoded[0].shape == decoded[1].shape and not np.array_equal(*decoded)
