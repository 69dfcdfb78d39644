"""`python -m dernet.detectors.compare --yolo best.pt --detectors a.ckpt b.ckpt --split test`: one table.

Every detector evaluated by one protocol on one split (the VinDr-SpineXR one: every image, confidence 0.001, original
pixels, pycocotools AP@0.5), in the layout of VinDr-SpineXR's Table 4 (per-class AP in the papers' order, mAP),
plus Weighted Boxes Fusion of all of them, with fusion weights and IoU threshold chosen on the validation split
(never on the split reported), and each model's ONNX Runtime latency per image on this machine. With --models (an
export holding the classifier), the best single detector also runs through the gate's three modes with it. Writes
comparison_<split>.{md,json} under --out.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..classes import CLASS_NAMES
from ..cliutil import add_data, add_out, add_split, run_command
from ..deploy.detection import Detections
from ..deploy.engines import RuntimeOptions, load_model
from ..deploy.fusion import fuse_detections
from ..deploy.manifest import DetectorSpec, load_manifest, read_manifest_file
from ..deploy.screening import MODES
from ..errors import MissingFileError, UsageError
from ..fileio import write_json_atomic, write_text_atomic
from ..imaging import detector_array
from ..metrics import DetectionSample, average_precision_50
from ..metrics.tables import detection_table
from ..timing import median_s

__all__ = ["FusionChoice", "choose_fusion", "compare_detectors", "fuse_samples", "main"]

FUSION_WEIGHTS = (1.0, 2.0)  # per model: every combination is tried on validation
FUSION_IOUS = (0.4, 0.5, 0.55, 0.6, 0.7)
LATENCY_RUNS = 10


@dataclass(frozen=True)
class FusionChoice:
    weights: tuple[float, ...]
    iou_thr: float
    val_map50: float


def fuse_samples(per_model: list[list[DetectionSample]], weights: tuple[float, ...], iou_thr: float) -> list:
    """Each image's boxes from every model fused by WBF (the models' samples are of the same images, in order)."""
    fused = []
    for images in zip(*per_model, strict=True):
        first = images[0]
        found = fuse_detections([Detections(s.boxes, s.scores, s.classes) for s in images],
                                (first.width, first.height), weights, iou_thr)  # fmt: skip
        fused.append(replace(first, boxes=found.boxes, scores=found.scores, classes=found.classes))
    return fused


def choose_fusion(val_per_model: list[list[DetectionSample]]) -> FusionChoice:
    """The weights and IoU threshold with the best validation mAP@0.5 (ties: the first, equal weights first)."""
    best = None
    grid = list(itertools.product(itertools.product(FUSION_WEIGHTS, repeat=len(val_per_model)), FUSION_IOUS))
    for weights, iou in tqdm(grid, desc="fusion on val", leave=False):
        if len(set(weights)) == 1 and weights[0] != FUSION_WEIGHTS[0]:
            continue  # all equal is one choice
        score = average_precision_50(fuse_samples(val_per_model, weights, iou), CLASS_NAMES)["map50"]
        if best is None or score > best.val_map50:
            best = FusionChoice(weights, iou, score)
    return best


def compare_detectors(
    yolo: Path | None,
    checkpoints: list[Path],
    data_dir: Path,
    split: str,
    out: Path,
    latency: bool = True,
    classifier_export: Path | None = None,
) -> dict[str, Any]:
    """The comparison table's numbers (and its files under ``out``); with ``classifier_export`` (an export folder)
    also the best single detector's AP in each gate mode, screened with that export's classifier."""
    if split == "val":
        raise UsageError("--split val: fusion is chosen on val, so the table must report another split (test)")
    if classifier_export is not None:
        load_manifest(classifier_export)  # before minutes of predictions: one line naming an incomplete export
    models = _models(yolo, checkpoints)
    loaded = {name: _load(name, path) for name, path in models.items()}  # each model read once, for both splits
    samples = {name: {s: _predict(name, loaded[name], models[name], data_dir, s) for s in ("val", split)}
               for name in models}  # fmt: skip
    rows = {name: average_precision_50(by_split[split], CLASS_NAMES) for name, by_split in samples.items()}
    fusion = None
    if len(samples) > 1:
        fusion = choose_fusion([by_split["val"] for by_split in samples.values()])
        fused = fuse_samples([by_split[split] for by_split in samples.values()], fusion.weights, fusion.iou_thr)
        rows["WBF (all)"] = average_precision_50(fused, CLASS_NAMES)
    best = max(models, key=lambda name: rows[name]["map50"])  # the best single detector (ties: the first)
    with tempfile.TemporaryDirectory() as tmp:
        wanted = models if latency else ({best: models[best]} if classifier_export else {})
        beside = {best: classifier_export} if classifier_export else {}
        exports = _exports(wanted, loaded, data_dir, Path(tmp), beside)
        ms = {name: _latency(folder, spec, data_dir) for name, (folder, spec) in exports.items()} if latency else {}
        gate_modes = _gate_modes(best, exports[best][0], data_dir, split, classifier_export) if classifier_export \
            else None
    if fusion is not None and ms:
        ms["WBF (all)"] = round(sum(ms.values()), 1)  # the models run one after the other; fusion itself is < 1 ms
    result = {
        "split": split,
        "images": len(next(iter(samples.values()))[split]),
        "models": {name: str(path) for name, path in models.items()},
        "ap50": {name: row["ap50"] for name, row in rows.items()},
        "map50": {name: row["map50"] for name, row in rows.items()},
        "ms_per_image": ms,
        "fusion": None if fusion is None else {"weights": list(fusion.weights), "iou_thr": fusion.iou_thr,
                                               "chosen_on": "val", "val_map50": fusion.val_map50},  # fmt: skip
        "gate_modes": gate_modes,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"comparison_{split}.json", result)
    write_text_atomic(out / f"comparison_{split}.md", format_comparison(result, rows) + "\n")
    return result


def format_comparison(result: dict[str, Any], rows: dict[str, dict]) -> str:
    """Table 4's layout (AP@0.5 per class in the papers' order, mAP), with ms per image as the last column."""
    table = detection_table(rows).splitlines()
    table[0] += " ms / image |"
    table[1] += "---|"
    for i, name in enumerate(rows, start=2):
        table[i] += f" {result['ms_per_image'].get(name, '–')} |"
    lines = [f"Split `{result['split']}`: {result['images']} images; AP@0.5 in percent (COCO 101-point, pycocotools), "
             "confidence 0.001; ms: ONNX Runtime fp32, CPU, batch 1, median.", "", *table]  # fmt: skip
    if result["fusion"]:
        f = result["fusion"]
        lines += ["", f"WBF weights {f['weights']} (in row order), IoU {f['iou_thr']}: chosen on val "
                      f"(mAP@0.5 {100 * f['val_map50']:.2f} there)."]  # fmt: skip
    if result["gate_modes"]:
        g = result["gate_modes"]
        lines += ["", f"The best single detector, {g['model']}, in the gate's three modes with the export's classifier "
                      f"(`{g['export']}`; ONNX Runtime fp32): gate: boxes only on images DERNet calls abnormal; "
                      "fusion: every image, boxes >= 0.5 on the others; all: every box.", "",
                  detection_table(g["modes"])]  # fmt: skip
    return "\n".join(lines)


def _models(yolo: Path | None, checkpoints: list[Path]) -> dict[str, Path]:
    """Row name -> weights: YOLO11 first, then each torchvision checkpoint by its architecture."""
    import torch

    models = {}
    for path in [p for p in [yolo, *checkpoints] if p is not None]:
        if not path.is_file():
            raise MissingFileError(f"{path}: no such weights file; train it first (make train-yolo / train-detector)")
    if yolo is not None:
        models["YOLO11"] = yolo
    for path in checkpoints:
        # mmap: only the hyperparameters are read here, not the weights (the model is loaded once, later)
        arch = torch.load(path, map_location="cpu", weights_only=False, mmap=True)["hyper_parameters"]["arch"]
        name = {"faster_rcnn": "Faster R-CNN", "faster_rcnn_v2": "Faster R-CNN v2", "retinanet": "RetinaNet",
                "retinanet_v2": "RetinaNet v2"}[arch]  # fmt: skip
        models[name if name not in models else f"{name} ({path.parent.parent.name})"] = path
    if not models:
        raise UsageError("nothing to compare: give --yolo and/or --detectors")
    return models


def _load(name: str, path: Path):
    """The model behind a row: an Ultralytics YOLO, or a torchvision LesionDetector in eval mode."""
    if name == "YOLO11":
        from yolo_spine.glue import yolo_model

        return yolo_model(path)
    from .evaluate import load_detector

    return load_detector(path)


def _predict(name: str, model, path: Path, data_dir: Path, split: str) -> list[DetectionSample]:
    """Every image of ``split`` predicted at confidence 0.001, with the CLAHE and input size the model trained with."""
    if name == "YOLO11":
        from yolo_spine.evaluate import predict_samples
        from yolo_spine.glue import trained_imgsz
        from yolo_spine.options import SpineOptions

        clahe = SpineOptions.for_run(path.resolve().parent.parent, data_dir).clahe
        return predict_samples(model, data_dir, split, trained_imgsz(model), 0.001, 0.7, clahe)
    from .evaluate import predict_split

    return predict_split(model, data_dir, split, model.clahe_for(data_dir), progress=False)


def _exports(
    models: dict[str, Path], loaded: dict, data_dir: Path, tmp: Path, beside: dict[str, Path]
) -> dict[str, tuple[Path, DetectorSpec]]:
    """Each model's verified ONNX export in a folder under ``tmp``: a copy of ``beside[name]`` (an export with its
    classifier) where given, the detector alone otherwise. The torchvision ones reuse their ``loaded`` module."""
    from .export import export_torchvision_detector

    exports = {}
    for i, (name, path) in enumerate(models.items()):
        folder = tmp / f"model{i}"
        if beside.get(name) is not None:
            shutil.copytree(beside[name], folder)
        if name == "YOLO11":
            from yolo_spine.export import export_detector

            spec = export_detector(path, data_dir, folder)  # Ultralytics exports from a private copy of the file
        else:
            spec = export_torchvision_detector(path, data_dir, folder, module=loaded[name])
        exports[name] = (folder, spec)
    return exports


def _latency(folder: Path, spec: DetectorSpec, data_dir: Path) -> float:
    """Median ms per image of an exported detector (fp32, CPU, batch 1) on one val canvas."""
    from ..datasets.cached import sample_inputs

    clahe = read_manifest_file(folder).preprocessing.clahe
    canvas = sample_inputs(data_dir, "val", 1, lambda c: detector_array(c, spec.imgsz, clahe)[0])[0]
    model = load_model(folder / spec.file, "fp32", RuntimeOptions(["cpu"]))
    return round(median_s(lambda: model(canvas), LATENCY_RUNS) * 1000, 1)


def _gate_modes(name: str, folder: Path, data_dir: Path, split: str, classifier_export: Path) -> dict[str, Any]:
    """AP@0.5 of the detector in ``folder`` in each gate mode, screened with the classifier copied there from
    ``classifier_export`` (fp32)."""
    from ..evaluation.exported import evaluate_exported

    detection = evaluate_exported(folder, data_dir, split, None, bootstrap=0, variant="fp32")["detection"]
    modes = {mode: {"ap50": detection[mode]["ap50"], "map50": detection[mode]["map50"]} for mode in MODES}
    return {"model": name, "export": str(classifier_export), "modes": modes}


def main(argv: list[str] | None = None, prog: str = "python -m dernet.detectors.compare") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--yolo", type=Path, help="YOLO11 weights (runs/yolo_spine/train/weights/best.pt)")
    parser.add_argument("--detectors", type=Path, nargs="*", default=[], help="torchvision detectors' best.ckpt")
    add_data(parser)
    add_split(parser)
    add_out(parser, "runs/compare", "the comparison table")
    parser.add_argument("--no-latency", dest="latency", action="store_false", help="skip the ONNX latency column")
    parser.add_argument("--models", type=Path, help="an export holding the classifier (export/): also the best "
                        "single detector's AP in each gate mode with it")  # fmt: skip
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        result = compare_detectors(args.yolo, args.detectors, args.data, args.split, args.out, args.latency,
                                   args.models)  # fmt: skip
        print((args.out / f"comparison_{result['split']}.md").read_text())
        print(f"written: {args.out}/comparison_{args.split}.{{md,json}}")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
