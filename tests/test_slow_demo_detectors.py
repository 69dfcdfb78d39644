"""`make demo-detectors`: the demo configs learn the phantom; the comparison table has every row and the gate modes.

The detectors are trained once per run of `make demo-detectors` (about 8 minutes on 2 cores): CI runs it after
`make demo` and then this test, which reads that run's table; run alone, it runs `make demo-detectors` (and
`make demo` first when the demo's outputs are missing) when the table is absent or older than a demo config.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import ROOT

pytestmark = pytest.mark.slow

CONFIGS = {"Faster R-CNN v2": ROOT / "configs/demo/detectors/faster_rcnn_r18_fpn.yaml",
           "RetinaNet v2": ROOT / "configs/demo/detectors/retinanet_r18_fpn.yaml"}  # fmt: skip
# mAP@0.5 on the phantom test split (61 images), measured by `make demo-detectors` on 2 cores: Faster R-CNN v2
# 10.89%, RetinaNet v2 3.74% (YOLO11n 38.84%); each config after two training steps scores 0.00%. Two runs here
# gave the same figures; the floors, at about half, leave room for another machine's arithmetic.
FLOORS = {"Faster R-CNN v2": 0.05, "RetinaNet v2": 0.018}
COMPARISON = ROOT / "runs/compare/comparison_test.json"
DEMO_OUTPUTS = [ROOT / "runs/yolo_spine/train/weights/best.pt", ROOT / "export/manifest.json"]


def _checkpoint(config: Path) -> Path:
    return ROOT / "runs/detectors" / config.stem / "checkpoints" / "best.ckpt"


def _fresh() -> bool:
    """The table exists and is newer than every demo config and every checkpoint it compares."""
    if not COMPARISON.is_file():
        return False
    inputs = [*CONFIGS.values(), *(_checkpoint(c) for c in CONFIGS.values())]
    return all(p.is_file() and p.stat().st_mtime <= COMPARISON.stat().st_mtime for p in inputs)


@pytest.fixture(scope="module")
def comparison() -> dict:
    if not _fresh():
        if not all(p.exists() for p in DEMO_OUTPUTS):
            subprocess.run(["make", "demo"], cwd=ROOT, check=True)
        subprocess.run(["make", "demo-detectors"], cwd=ROOT, check=True)
    return json.loads(COMPARISON.read_text())


def test_the_demo_detectors_were_trained_from_the_demo_configs(comparison: dict) -> None:
    for name, config in CONFIGS.items():
        recipe = yaml.safe_load(config.read_text())["model"]
        saved = torch.load(_checkpoint(config), map_location="cpu", weights_only=False)["hyper_parameters"]
        assert {k: saved[k] for k in recipe} == recipe, config
        assert comparison["models"][name].endswith(f"{config.stem}/checkpoints/best.ckpt")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_demo_detector_learns_the_phantom(comparison: dict, name: str) -> None:
    assert comparison["split"] == "test" and comparison["images"] > 50
    assert comparison["map50"][name] >= FLOORS[name], f"{name}: test mAP@0.5 {comparison['map50'][name]:.4f}"
    assert comparison["ms_per_image"][name] > 0  # its verified ONNX export was timed


def test_the_table_has_every_row_fusion_chosen_on_val_and_the_gate_modes(comparison: dict) -> None:
    assert list(comparison["map50"]) == ["YOLO11", *CONFIGS, "WBF (all)"]
    assert comparison["fusion"]["chosen_on"] == "val" and len(comparison["fusion"]["weights"]) == 3
    table = COMPARISON.with_suffix(".md").read_text()
    assert all(name in table for name in comparison["map50"]) and "LT2 Disc space narrowing" in table
    gate = comparison["gate_modes"]  # the best single detector through the gate with the demo's classifier
    assert gate["model"] == max(list(comparison["map50"])[:-1], key=comparison["map50"].get)
    assert list(gate["modes"]) == ["gate", "fusion", "all"] and "gate's three modes" in table
