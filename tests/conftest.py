"""Shared fixtures: a small phantom in the release layout and its prepared dataset. No network, ever."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
from pathlib import Path

# Before anything imports Ultralytics, timm or albumentations: nothing in the tests may wait on the network.
_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("YOLO_CONFIG_DIR", str(_ROOT / ".ultralytics"))
for _key in ("YOLO_OFFLINE", "HF_HUB_OFFLINE", "NO_ALBUMENTATIONS_UPDATE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")

import pytest  # noqa: E402
import yaml  # noqa: E402

from dernet.datasets import PrepareConfig, prepare_dataset, synthesize  # noqa: E402
from yolo_spine.glue import ensure_config_dir  # noqa: E402

PHANTOM_IMAGES = 24
PHANTOM_SEED = 7
PHANTOM_LONG_SIDE = 256
CACHE_LONG_SIDE = 128
ROOT = _ROOT
# Debian's Chromium for the browser tests (Playwright drives it; no browser download), and its flags for a closed
# network (no background connections, no component updates), as root in a container.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


ensure_config_dir()


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom release: 24 images at 256 px, every encoding variant represented."""
    out = tmp_path_factory.mktemp("phantom")
    synthesize(out, images=PHANTOM_IMAGES, seed=PHANTOM_SEED, long_side=PHANTOM_LONG_SIDE, progress=False)
    return out


@pytest.fixture(scope="session")
def prepared_dir(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The phantom prepared at a 128 px cache (read-only for tests: copy it before changing anything)."""
    out = tmp_path_factory.mktemp("prepared")
    config = PrepareConfig(long_side=CACHE_LONG_SIDE, folds=3, workers=1)
    result = prepare_dataset(phantom_dir, out, config, progress=False)
    assert not result.skipped
    return out


# Models trained a couple of steps, shared by the tests of training, export, the gate and the web page.

MEMBERS = ["densenet121", "tf_efficientnetv2_s", "resnet50"]


def quick(prepared: Path, runs: Path, steps: int = 2) -> list[str]:
    """Overrides that make a member run a couple of CPU steps at 64 px."""
    return [
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        str(steps),
        "--trainer.limit_val_batches",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--model.image_size",
        "64",
        "--model.warmup_steps",
        "0",  # the demo recipes warm up over 50 steps; a couple of steps cannot
        "--data.batch_size",
        "4",
        "--data.num_workers",
        "0",
        "--data.data_dir",
        str(prepared),
        "--trainer.logger.init_args.save_dir",
        str(runs),
    ]


@pytest.fixture(scope="session")
def trained(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three members trained two steps each through the real CLI, and an ensemble.yaml pointing at them."""
    from dernet.ensemble.cli import main as dernet_main

    runs = tmp_path_factory.mktemp("runs")
    for name in MEMBERS:
        assert (
            dernet_main(
                ["fit", "--config", str(ROOT / "configs/demo/ensemble" / f"{name}.yaml"), *quick(prepared_dir, runs)]
            )
            == 0
        )
    config = yaml.safe_load((ROOT / "configs/demo/ensemble/ensemble.yaml").read_text())
    config.update(
        members={n: str(runs / n / "checkpoints" / "best.ckpt") for n in MEMBERS},
        data_dir=str(prepared_dir),
        weights="paper",
        output=str(runs / "ensemble.json"),
        bootstrap_resamples=200,
    )
    ensemble_yaml = runs / "ensemble.yaml"
    ensemble_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"runs": runs, "ensemble_yaml": ensemble_yaml, "prepared": prepared_dir}


def _find_transform(compose, name: str):
    """The transform called ``name`` inside Ultralytics' nested Compose objects."""
    for transform in getattr(compose, "transforms", []):
        if type(transform).__name__ == name:
            return transform
        found = _find_transform(transform, name)
        if found is not None:
            return found
    return None


@pytest.fixture(scope="session")
def trained_run(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three epochs of YOLO11n at 64 px on the phantom, mosaic cut off after epoch 2, with sockets forbidden."""
    from yolo_spine.train import load_config, train

    connects: list = []

    def refuse(self, address, *args, **kwargs):
        connects.append(address)
        raise OSError("network disabled in tests")

    mosaic_by_epoch: dict[int, float] = {}
    criterion_types: list[str] = []
    out = tmp_path_factory.mktemp("yolo")
    config = load_config(
        ROOT / "configs/demo/yolo_spine.yaml",
        [
            f"data={prepared_dir / 'data.yaml'}",
            "epochs=3",
            "mosaic_cutoff_epoch=2",
            "imgsz=64",
            "batch=4",
            f"project={out}",
            "name=run",
            "val=true",
        ],
    )
    from ultralytics.models.yolo.detect import DetectionTrainer

    def record(trainer: DetectionTrainer) -> None:
        if trainer.epoch not in mosaic_by_epoch:
            mosaic = _find_transform(trainer.train_loader.dataset.transforms, "Mosaic")
            mosaic_by_epoch[trainer.epoch] = float(mosaic.p)
            criterion_types.append(type(trainer.model.criterion.bce).__name__)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        run_dir = train(config, callbacks={"on_train_batch_end": [record]})  # Ultralytics' own callback API
    return {"run": run_dir, "connects": connects, "mosaic": mosaic_by_epoch, "criterion": criterion_types}


@pytest.fixture(scope="session")
def fitted_ensemble(trained: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ensemble's ensemble.json: paper weights, Youden threshold on val."""
    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.fit_ensemble import fit_ensemble

    ensemble_json = tmp_path_factory.mktemp("ensemble") / "ensemble.json"
    config = load_ensemble_config(trained["ensemble_yaml"])
    fit_ensemble(dataclasses.replace(config, output=str(ensemble_json)))
    return ensemble_json


@pytest.fixture(scope="session")
def exported_models(
    trained: dict, trained_run: dict, fitted_ensemble: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny ensemble and detector exported as the gate expects them."""
    from dernet.export.classifier import export_classifier
    from yolo_spine.export import export_detector

    out = tmp_path_factory.mktemp("export")
    export_classifier(fitted_ensemble, trained["prepared"], out)
    export_detector(trained_run["run"] / "weights" / "best.pt", trained["prepared"], out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classifier"]["input_size"] == 64 and manifest["detector"]["imgsz"] == 64
    return out


def debian_tool(name: str, package: str) -> str:
    """The path of a Debian peer (dcmtk, dicom3tools, Orthanc): .ci/run installs it, so CI fails without it; elsewhere
    the test is skipped."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: .ci/run installs Debian's {package}")
        pytest.skip(f"{name} not installed (apt-get install {package})")
    return path
