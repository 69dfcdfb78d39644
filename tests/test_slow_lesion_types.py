"""Lesion types learn the phantoms on a CPU: Ghauri's four classes from a folder-per-class phantom (accuracy and the
confusion matrix on its test split) and the seven VinDr-SpineXR lesion types as a multi-label head (per-class AUROC
on the release-layout phantom's test split). Both through the real CLIs and the demo configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dernet.datasets.cli import main as datasets_main
from dernet.ensemble.cli import main as dernet_main

from .conftest import ROOT

pytestmark = pytest.mark.slow


def _train_and_evaluate(config: str, prepared: Path, runs: Path, bootstrap: str = "200") -> dict:
    args = ["fit", "--config", str(ROOT / config), "--data.data_dir", str(prepared), "--data.num_workers", "0",
            "--trainer.logger.init_args.save_dir", str(runs), "--trainer.enable_progress_bar", "false"]  # fmt: skip
    assert dernet_main(args) == 0
    checkpoint = runs / Path(config).stem / "checkpoints" / "best.ckpt"
    out = runs / "evaluation"
    args = ["evaluate-types", "--checkpoint", str(checkpoint), "--data-dir", str(prepared), "--split", "test",
            "--out", str(out), "--bootstrap", bootstrap]  # fmt: skip
    assert dernet_main(args) == 0
    print((out / "types_test.md").read_text())
    return json.loads((out / "types_test.json").read_text())


def test_imagefolder_phantom_four_classes_clearly_beat_chance(tmp_path: Path) -> None:
    # 400 images (100 per class, 300 px), 20 epochs of ResNet-18 at 128 px from random weights, about 2 minutes on 2
    # cores. Measured on the 2026-12 phantom with one thread: test accuracy 80.0% (chance 25%; 40 test images),
    # macro one-vs-rest AUROC 96.4%; surgical implant and osteophyte 10/10, normal 4/10. On the earlier phantom 60-65%.
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    assert datasets_main(["synth", "--layout", "imagefolder", "--out", str(raw), "--images", "400", "--quiet"]) == 0
    assert datasets_main(["prepare", "--layout", "imagefolder", "--source", str(raw), "--out", str(prepared),
                          "--long-side", "128", "--workers", "2", "--quiet"]) == 0  # fmt: skip
    result = _train_and_evaluate("configs/demo/lesion_types/imagefolder_resnet18.yaml", prepared, tmp_path / "runs")
    assert result["images"] == 40 and sum(map(sum, result["confusion"])) == 40
    assert result["accuracy"] >= 0.45  # chance is 0.25
    assert result["per_class"]["surgical implant"]["recall"] >= 0.8  # metal screws: the plainest class
    assert (tmp_path / "runs" / "evaluation" / "confusion_test.png").is_file()


def test_multilabel_head_per_class_auroc_on_the_release_phantom(tmp_path: Path) -> None:
    # 400 images at 256 px (seed 3), 20 epochs of ResNet-18 at 128 px from random weights, about 2 minutes on 2
    # cores. Measured on the 2026-12 phantom with one thread (test split, 75 images; thresholds from val): AUROC disc
    # space narrowing 96.4%, surgical implant 93.4%, spondylolisthesis 89.2%, vertebral collapse 86.7%, foraminal
    # stenosis 85.1%, osteophytes 82.3%, other lesions 81.0%. On the earlier phantom (one small lesion per image)
    # only disc space narrowing was learned (99.2%; macro 63.8%). The floors hold what every run learned.
    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    assert datasets_main(["synth", "--out", str(raw), "--images", "400", "--long-side", "256", "--seed", "3",
                          "--quiet"]) == 0  # fmt: skip
    assert datasets_main(["prepare", "--source", str(raw), "--out", str(prepared), "--long-side", "128",
                          "--workers", "2", "--quiet"]) == 0  # fmt: skip
    result = _train_and_evaluate("configs/demo/lesion_types/multilabel_resnet18.yaml", prepared, tmp_path / "runs")
    aurocs = {n: e["metrics"]["auroc"] for n, e in result["per_class"].items() if e["metrics"] is not None}
    print("per-class test AUROC:", {n: round(100 * a, 1) for n, a in aurocs.items()})
    assert result["thresholds"]["chosen_on"]["split"] == "val" and len(aurocs) >= 5
    assert result["macro_auroc"] >= 0.55
    assert aurocs["Disc space narrowing"] >= 0.8
