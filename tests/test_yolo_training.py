"""The detector trainer: mosaic schedule, focal loss, CLAHE dataset, offline training, plain checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dernet.imaging import ClaheParams, model_input
from yolo_spine.focal import FocalBCE, install_focal_loss
from yolo_spine.schedule import close_mosaic_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("epochs", "cutoff", "expected"),
    [
        (55, 25, [True] * 25 + [False] * 30),
        (4, 2, [True, True, False, False]),
        (3, 5, [True] * 3),
        (3, 3, [True] * 3),
        (3, 0, [False] * 3),
    ],
)
def test_mosaic_cutoff_schedule(epochs: int, cutoff: int, expected: list[bool]) -> None:
    close = close_mosaic_for(epochs, cutoff)
    # Ultralytics' rule (BaseTrainer._do_train): mosaic closes when the epoch reaches epochs - close_mosaic; 0: never
    assert [not close or e < epochs - close for e in range(epochs)] == expected


def test_focal_loss_matches_hand_computed_values() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.5]])
    targets = torch.tensor([[1.0, 0.0], [0.3, 1.0]])
    p = torch.sigmoid(logits)
    bce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    p_t = targets * p + (1 - targets) * (1 - p)
    torch.testing.assert_close(FocalBCE(2.0)(logits, targets), bce * (1 - p_t) ** 2)
    alpha_t = targets * 0.25 + (1 - targets) * 0.75
    torch.testing.assert_close(FocalBCE(2.0, 0.25)(logits, targets), bce * (1 - p_t) ** 2 * alpha_t)
    # hand-computed: logit 0, target 1 -> p = 0.5, bce = ln 2, focal = ln 2 * 0.25
    assert FocalBCE(2.0)(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(np.log(2) / 4)


def _tiny_detection_model():
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolo11n.yaml", nc=7, verbose=False)
    model.args = get_cfg()
    return model


def _batch() -> dict:
    return {
        "img": torch.rand(2, 3, 64, 64),
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[1.0], [4.0]]),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.25]]),
    }


def test_focal_with_gamma_0_equals_ultralytics_bce_and_is_used_when_on() -> None:
    torch.manual_seed(0)
    model = _tiny_detection_model()
    batch = _batch()
    preds = model(batch["img"])
    stock, _ = model.init_criterion()(preds, batch)
    install_focal_loss(model, gamma=0.0, alpha=None)
    assert isinstance(model.criterion.bce, FocalBCE)
    focal0, _ = model.loss(batch, preds)  # Ultralytics' own entry point uses the installed criterion
    torch.testing.assert_close(focal0, stock)
    install_focal_loss(model, gamma=2.0, alpha=None)
    focal2, items = model.loss(batch, preds)
    assert focal2[1] < stock[1] and torch.allclose(focal2[0], stock[0])  # only the class term changes


def test_yolo11l_builds_with_seven_classes() -> None:
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolo11l.yaml", nc=7, verbose=False)
    assert model.model[-1].nc == 7 and sum(p.numel() for p in model.parameters()) > 25e6


def test_dataset_hands_training_the_dernet_imaging_output(prepared_dir: Path) -> None:
    from ultralytics.cfg import get_cfg
    from ultralytics.data.utils import check_det_dataset

    from yolo_spine.dataset import ClaheYOLODataset

    data = check_det_dataset(str(prepared_dir / "data.yaml"))
    clahe = ClaheParams(2.0, 8)
    dataset = ClaheYOLODataset(
        img_path=data["train"],
        imgsz=96,
        augment=True,
        hyp=get_cfg(),
        data=data,
        clahe=clahe,
        batch_size=4,
        rect=False,
        stride=32,
    )
    image, original, resized = dataset.load_image(0)
    cache = cv2.imread(dataset.im_files[0], cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(image, cv2.cvtColor(model_input(cache, 96, clahe), cv2.COLOR_GRAY2BGR))
    assert original == cache.shape[:2] and max(resized) == 96
    again, _, _ = dataset.load_image(0)  # buffered: returned as is, not equalised twice
    np.testing.assert_array_equal(again, image)
    albumentations = next(t for t in dataset.transforms.transforms if type(t).__name__ == "Albumentations")
    assert "CLAHE" not in str(albumentations.transform)  # Ultralytics' random CLAHE would equalise twice


def test_training_is_offline_applies_mosaic_until_the_cutoff_and_uses_focal_loss(trained_run: dict) -> None:
    assert trained_run["connects"] == []
    assert trained_run["mosaic"] == {0: 1.0, 1: 1.0, 2: 0.0}
    assert set(trained_run["criterion"]) == {"FocalBCE"}
    options = json.loads((trained_run["run"] / "spine_options.json").read_text())
    assert options["clahe_clip_limit"] == 2.0 and options["focal"] is True


def test_checkpoint_is_plain_ultralytics(trained_run: dict, prepared_dir: Path) -> None:
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    weights = trained_run["run"] / "weights" / "best.pt"
    model = YOLO(str(weights))
    assert type(model.model) is DetectionModel and getattr(model.model, "criterion", None) is None
    assert len(model.names) == 7
    image = next((prepared_dir / "images" / "test").glob("*.png"))
    results = model.predict(str(image), imgsz=64, conf=0.001, verbose=False)
    assert results[0].boxes is not None


def test_model_must_be_local_weights_or_an_architecture(tmp_path: Path) -> None:
    from yolo_spine.train import main

    assert main(["--config", str(ROOT / "configs/demo/yolo_spine.yaml"), f"model={tmp_path / 'missing.pt'}"]) == 2
    assert main(["--config", str(ROOT / "configs/demo/yolo_spine.yaml"), "model=resnet50"]) == 2


def test_evaluation_writes_the_paper_table(trained_run: dict, prepared_dir: Path, capsys) -> None:
    from yolo_spine.evaluate import main

    weights = trained_run["run"] / "weights" / "best.pt"
    assert main(["--weights", str(weights), "--data", str(prepared_dir), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "| LT2 Disc space narrowing | LT4 Foraminal stenosis |" in out and "mAP@0.5" in out
    result = json.loads((trained_run["run"] / "evaluation_test.json").read_text())
    assert 0.0 <= result["map50"] <= 1.0 and 0.0 <= result["ultralytics_map50"] <= 1.0
    assert result["images"] == len(list((prepared_dir / "images" / "test").glob("*.png")))
    assert (trained_run["run"] / "pr_test.png").stat().st_size > 5_000


def test_options_reach_a_ddp_worker_without_the_environment(prepared_dir: Path, tmp_path: Path) -> None:
    """Ultralytics starts each DDP worker from a script it writes, holding the pickled trainer class: our options
    travel on that class. The worker script runs here as torch.distributed would run it, up to training."""
    from ultralytics.utils.dist import generate_ddp_file

    from yolo_spine.options import SpineOptions
    from yolo_spine.trainer import SpineDetectionTrainer

    options = SpineOptions(clahe_clip_limit=3.5, clahe_tile_grid=4, focal=False, focal_gamma=1.5)
    overrides = {"model": "yolo11n.yaml", "data": str(prepared_dir / "data.yaml"), "imgsz": 64, "epochs": 1,
                 "project": str(tmp_path), "name": "run", "device": "cpu", "plots": False}  # fmt: skip
    trainer = SpineDetectionTrainer.with_options(options)(overrides=overrides)
    assert trainer.options == options and SpineDetectionTrainer.options == SpineOptions()  # bound, not global
    script = Path(generate_ddp_file(trainer))
    try:
        source = script.read_text()
        assert "trainer.train()" in source
        probe = tmp_path / "worker.py"
        probe.write_text(source.replace("trainer.train()", "print('WORKER', repr(trainer.options))"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("YOLO_SPINE")}
        done = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True, env=env, timeout=300)
    finally:
        script.unlink(missing_ok=True)
        script.with_suffix(".pt").unlink(missing_ok=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"WORKER {options!r}" in done.stdout
    assert json.loads((tmp_path / "run" / "spine_options.json").read_text())["clahe_clip_limit"] == 3.5
