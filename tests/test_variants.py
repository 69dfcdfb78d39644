"""Runtime variants (int8, OpenVINO) of the tiny exported models, the gate's choice among them, and the pipelined
folder run. Tolerances are stated per check; the tiny models' outputs sit near 0.5 and near zero box scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dernet.deploy import Screener
from dernet.deploy.engines import RuntimeOptions, load_model
from dernet.deploy.manifest import load_manifest
from dernet.deploy.variants import VARIANTS, choose_variant, engine_available
from dernet.export.quantize import add_variants, calibration_arrays

from .test_export_gate import _phantom_files

OPENVINO = engine_available("openvino")
ALL = ["int8", *(["openvino-fp32", "openvino-bf16", "openvino-int8"] if OPENVINO else [])]
PROBABILITY_TOLERANCE = {"int8": 0.05, "openvino-fp32": 1e-4, "openvino-bf16": 0.02, "openvino-int8": 0.05}
SCORE_TOLERANCE = {"int8": 0.05, "openvino-fp32": 1e-4, "openvino-bf16": 0.02, "openvino-int8": 0.05}


@pytest.fixture(scope="module")
def variant_models(exported_models: Path, trained: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny export with every variant this install can run added, timed and checked on val."""
    out = tmp_path_factory.mktemp("variants") / "export"
    shutil.copytree(exported_models, out)
    add_variants(out, trained["prepared"], ALL, calibration_images=4)
    return out


def test_manifest_lists_every_variant_with_its_checks(variant_models: Path) -> None:
    data = json.loads((variant_models / "manifest.json").read_text())
    assert data["variants"] == ["fp32", *ALL]
    for role, metric in (("classifier", "auroc_delta"), ("detector", "map50_delta")):
        entries = data[role]["variants"]
        assert entries["fp32"]["ms"] > 0
        for name in ALL:
            entry = entries[name]
            assert (variant_models / entry["file"]).is_file() and entry["ms"] > 0
            assert entry["split"] == "val" and isinstance(entry["accepted"], bool) and metric in entry
    assert data["classifier"]["variants"]["int8"]["file"] == "dernet.int8.onnx"
    assert data["classifier"]["variants"]["int8"]["calibration_images"] == 4


@pytest.mark.parametrize("name", ALL)
def test_variant_outputs_agree_with_fp32(variant_models: Path, trained: dict, name: str) -> None:
    manifest = load_manifest(variant_models)
    runtime = RuntimeOptions(["cpu"])
    for role, spec, tolerance in (
        ("classifier", manifest.classifier, PROBABILITY_TOLERANCE[name]),
        ("detector", manifest.detector, SCORE_TOLERANCE[name]),
    ):
        reference = load_model(manifest.path_of(spec), "fp32", runtime)
        _, path = choose_variant(manifest, spec, name)
        variant = load_model(path, name, runtime)
        for array in calibration_arrays(manifest, trained["prepared"], role, 3):
            expected, got = reference(array)[0], variant(array)[0]
            assert got.shape == expected.shape
            if role == "classifier":  # probabilities
                np.testing.assert_allclose(got, expected, atol=tolerance)
            else:  # class scores of every anchor (rows 4: of [1, 4 + classes, anchors])
                np.testing.assert_allclose(got[:, 4:], expected[:, 4:], atol=tolerance)


def test_auto_picks_the_fastest_accepted_variant_and_reports_it(variant_models: Path, phantom_dir: Path) -> None:
    data = json.loads((variant_models / "manifest.json").read_text())
    screener = Screener(variant_models)
    for role in ("classifier", "detector"):
        entries = data[role]["variants"]
        accepted = {n: e["ms"] for n, e in entries.items() if n == "fp32" or e["accepted"]}
        # the fastest; on a tie (the tiny models' latencies are rounded to 0.01 ms) fp32, which needs nothing extra
        assert screener.variants[role] == min(accepted, key=lambda name: (accepted[name], name != "fp32"))
    result = screener.screen(_phantom_files(phantom_dir, True, 1)[0], mode="all")
    assert result.runtime == screener.variants
    forced = Screener(variant_models, variant="fp32")
    assert forced.variants == {"classifier": "fp32", "detector": "fp32"}
    assert forced.model_hashes == {"classifier": data["classifier"]["sha256"], "detector": data["detector"]["sha256"]}


def test_auto_never_picks_a_variant_that_failed_its_accuracy_check(variant_models: Path, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(variant_models, folder)
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for role in ("classifier", "detector"):
        for name, entry in data[role]["variants"].items():
            entry["accepted"] = name == "fp32"
            entry["ms"] = 1000.0 if name == "fp32" else 0.1  # faster, but not accepted
    path.write_text(json.dumps(data))
    assert Screener(folder).variants == {"classifier": "fp32", "detector": "fp32"}


def test_asking_for_a_missing_variant_is_a_clear_error(exported_models: Path) -> None:
    manifest = load_manifest(exported_models)
    with pytest.raises(ValueError, match="no 'int8' variant exported beside it; run `make export-onnx QUANTIZE=int8`"):
        choose_variant(manifest, manifest.classifier, "int8")
    with pytest.raises(ValueError, match="unknown runtime variant 'fp16'"):
        choose_variant(manifest, manifest.classifier, "fp16")
    assert set(VARIANTS) >= {"fp32", "int8", "openvino-bf16"}


def test_gate_cli_reports_the_variant(variant_models: Path, phantom_dir: Path, tmp_path: Path) -> None:
    from dernet.gate.cli import main as gate_main

    dicom = _phantom_files(phantom_dir, True, 1)[0]
    assert gate_main([str(dicom), "--models", str(variant_models), "--out", str(tmp_path), "--variant", "int8"]) == 0
    report = json.loads((tmp_path / f"{dicom.name}.json").read_text())
    data = json.loads((variant_models / "manifest.json").read_text())
    assert report["runtime"] == {"classifier": "int8", "detector": "int8"}
    assert report["models"]["classifier"] == data["classifier"]["variants"]["int8"]["sha256"]


def test_pipelined_folder_run_gives_the_sequential_reports(exported_models: Path, phantom_dir: Path) -> None:
    screener = Screener(exported_models)
    files = _phantom_files(phantom_dir, True, 4) + _phantom_files(phantom_dir, False, 4) + [phantom_dir / "missing"]
    sources = [(path, str(path)) for path in files]
    sequential = list(screener.screen_many(sources, mode="all", conf=0.001, prefetch=0))
    pipelined = list(screener.screen_many(sources, mode="all", conf=0.001, prefetch=2))
    assert [r.input for r in pipelined] == [str(p) for p in files]  # order kept
    for a, b in zip(sequential, pipelined, strict=True):
        assert (a.status, a.reason, a.probability) == (b.status, b.reason, b.probability)
        assert a.findings == b.findings and a.member_probabilities == b.member_probabilities
    assert pipelined[-1].status == "rejected" and "no such file" in pipelined[-1].reason


def test_quantizing_leaves_the_callers_logging_alone(exported_models: Path, trained: dict, tmp_path: Path) -> None:
    """The 1-D BatchNorm scales are quantized per tensor on request, so ONNX Runtime has nothing to warn about
    through the root logger, and nothing here changes the root logger's level or handlers."""
    import logging

    from dernet.export.quantize import quantize_int8

    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.DEBUG)
    catcher.emit = records.append  # type: ignore[method-assign]
    root.addHandler(catcher)
    try:
        manifest = load_manifest(exported_models)
        calibration = calibration_arrays(manifest, trained["prepared"], "classifier", 2)
        quantize_int8(manifest.path_of(manifest.classifier), tmp_path / "int8.onnx", "classifier", calibration)
    finally:
        root.removeHandler(catcher)
    assert (root.level, list(root.handlers)) == before
    assert not [r.getMessage() for r in records if r.levelno >= logging.WARNING and "out-of-range" in r.getMessage()]
    assert (tmp_path / "int8.onnx").stat().st_size > 0
