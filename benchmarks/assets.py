"""What the benchmark runs on, made once and cached under runs/bench/assets/ (rebuilt when missing).

- Production-size models with random weights (speed does not depend on the weights): the three members at the
  input size of configs/ensemble/*.yaml exported as one ensemble graph, and YOLO11-L from configs/yolo_spine.yaml at
  its imgsz, both through the project's own exporters (so verified like any export), with the preprocessing of
  configs/data.yaml (cache long side), plus their int8/OpenVINO variants.
- Release-like radiographs from the phantom generator: 2560 px long side, 12 bits in 16, JPEG 2000 Lossless.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch
import yaml

from dernet.classes import CLASS_NAMES
from dernet.datasets import synthesize
from dernet.datasets.preprocessing import read_data_preprocessing
from dernet.datasets.vindr import read_annotations
from dernet.deploy.manifest import MANIFEST_NAME, read_manifest_file, write_manifest_file
from dernet.ensemble.record import ChosenOn, EnsembleRecord, MemberRecord
from dernet.imaging import ClaheParams
from dernet.records import RecordError

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = ("densenet121", "tf_efficientnetv2_s", "resnet50")


def production_settings() -> dict:
    """Member input sizes, detector architecture and imgsz, cache long side: from the production configs."""
    sizes = {}
    for name in MEMBERS:
        config = yaml.safe_load((ROOT / "configs/ensemble" / f"{name}.yaml").read_text())
        sizes[name] = int(config["model"]["image_size"])
    detector = yaml.safe_load((ROOT / "configs/yolo_spine.yaml").read_text())
    data = yaml.safe_load((ROOT / "configs/data.yaml").read_text())
    return {
        "member_sizes": sizes,
        "detector_model": detector["model"],
        "imgsz": int(detector["imgsz"]),
        "cache_long_side": int(data["prepare"]["long_side"]),
    }


def _member_checkpoint(name: str, size: int, path: Path, clahe: ClaheParams) -> None:
    """A Lightning checkpoint of a randomly initialized member (what load_member reads)."""
    import pytorch_lightning as pl

    from dernet.ensemble.member import MemberClassifier

    torch.manual_seed(0)
    model = MemberClassifier(backbone=name, image_size=size, pretrained=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"clahe_clip_limit": clahe.clip_limit, "clahe_tile_grid": clahe.tile_grid}  # as the data module records
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
         "datamodule_hyper_parameters": data, "pytorch-lightning_version": pl.__version__},
        path,
    )  # fmt: skip


def _detector_weights(architecture: str, imgsz: int, path: Path) -> None:
    """A randomly initialized detector with the seven VinDr-SpineXR classes, as an Ultralytics .pt file."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(architecture, nc=len(CLASS_NAMES), verbose=False)
    model.names = dict(enumerate(CLASS_NAMES))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"imgsz": imgsz, "task": "detect"}, "epoch": -1}, path)


def production_models(assets: Path, prepared: Path, variants: list[str]) -> Path:
    """export/-like folder of production-size random-weight models (+ variants), built once."""
    from dernet.export.classifier import export_classifier
    from dernet.export.quantize import make_variant_files
    from yolo_spine.export import export_detector
    from yolo_spine.options import SpineOptions

    folder = assets / "production"
    settings = production_settings()
    if (folder / MANIFEST_NAME).is_file():
        try:
            built = read_manifest_file(folder)
        except RecordError:  # built by an earlier version of the project: rebuilt below
            built = None
        if built and built.provenance.get("bench_settings") == settings and set(built.variants) >= set(variants):
            return folder
    shutil.rmtree(folder, ignore_errors=True)
    checkpoints = assets / "checkpoints"
    clahe = read_data_preprocessing(prepared).clahe
    members = []
    for name, size in settings["member_sizes"].items():
        ckpt = checkpoints / name / "best.ckpt"
        _member_checkpoint(name, size, ckpt, clahe)
        members.append(MemberRecord(name=name, checkpoint=str(ckpt), threshold=0.5))
    ensemble_json = EnsembleRecord(
        members=tuple(members), weights=(0.42, 0.32, 0.26), weights_source="paper", combine="probability",
        threshold=0.5, chosen_on=ChosenOn(split="none (random weights, for timing)"),
        clahe_clip_limit=clahe.clip_limit, clahe_tile_grid=clahe.tile_grid,
    ).save(checkpoints / "ensemble.json")  # fmt: skip
    export_classifier(ensemble_json, prepared, folder, samples=2)
    weights = checkpoints / "detector" / "weights" / "best.pt"
    _detector_weights(settings["detector_model"], settings["imgsz"], weights)
    SpineOptions(clahe_clip_limit=clahe.clip_limit, clahe_tile_grid=clahe.tile_grid).save(weights.parent.parent)
    export_detector(weights, prepared, folder, imgsz=settings["imgsz"], samples=1)
    built = read_manifest_file(folder)
    # The production cache long side (the demo's prepared data only served the export's own checks).
    production = dataclasses.replace(built.preprocessing, cache_long_side=settings["cache_long_side"])
    provenance = {**built.provenance, "bench_settings": settings}
    write_manifest_file(folder, dataclasses.replace(built, preprocessing=production, provenance=provenance))
    make_variant_files(folder, prepared, variants)  # random weights: speed only, no accuracy check
    return folder


def release_like_images(assets: Path, count: int = 6) -> tuple[Path, list[Path], list[Path]]:
    """A release-like phantom (2560 px, JPEG 2000 Lossless, 12 bits): its folder, abnormal and normal images."""
    folder = assets / "release_like"
    written = len(list(folder.glob("*_images/*.dicom")))
    if not (folder / "summary.json").is_file() or written != count:
        shutil.rmtree(folder, ignore_errors=True)
        synthesize(folder, images=count, seed=20261124, long_side=2560, release_like=True, progress=False)
    abnormal, normal = [], []
    for split in ("train", "test"):
        from collections import Counter

        for image in read_annotations(folder / "annotations" / f"{split}.csv", split, Counter()).values():
            path = folder / f"{split}_images" / f"{image.image_id}.dicom"
            (abnormal if image.abnormal else normal).append(path)
    return folder, sorted(abnormal), sorted(normal)


def gating_folder(assets: Path, phantom: Path, count: int = 40) -> Path:
    """``count`` demo phantom test images, half normal and half abnormal by ground truth (copied once)."""
    from collections import Counter

    folder = assets / f"gating_{count}"
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    images = read_annotations(phantom / "annotations" / "test.csv", "test", Counter()).values()
    picked = [i for i in images if i.abnormal][: count // 2] + [i for i in images if not i.abnormal][: count // 2]
    if len(picked) < count:
        raise ValueError(f"{phantom}: fewer than {count // 2} normal and abnormal test images; run `make demo` first")
    for image in picked:
        shutil.copyfile(phantom / "test_images" / f"{image.image_id}.dicom", folder / f"{image.image_id}.dicom")
    return folder
