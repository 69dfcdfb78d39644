"""`python -m yolo_spine.export --weights runs/yolo_spine/train/weights/best.pt --data data/prepared --out export`.

The detector through Ultralytics' ONNX exporter, without NMS in the graph (the gate runs OpenCV's NMS, so one
file serves screening at conf 0.25 and evaluation at 0.001), verified against the PyTorch model after NMS, and
recorded in export/manifest.json. The training stack (the 'train' extra) is imported inside the functions that use
it, so that `python -m yolo_spine.export` on an install without it says so in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dernet.classes import CLASS_NAMES
from dernet.cliutil import run_command
from dernet.deploy.detection import Detections, decode_detections
from dernet.deploy.manifest import install_model_file, preprocessing_dict, rejection_dict, update_manifest
from dernet.errors import MissingFileError, UsageError, require_extra
from dernet.export.verify import ExportVerificationError, check_onnx, ort_session
from dernet.imaging import detector_array
from dernet.runtime_env import PROJECT_ULTRALYTICS_DIR, ensure_ultralytics_config_dir

from .options import SpineOptions

__all__ = ["export_detector", "main"]

IOU_MATCH, SCORE_TOLERANCE = 0.99, 1e-3  # a PyTorch box must have an ONNX twin this close
NMS_REASON = (
    "NMS at run time (OpenCV NMSBoxesBatched, class-aware): a graph with NMS bakes in one confidence threshold, "
    "and evaluation needs 0.001 while screening uses the manifest's default"
)


def export_detector(
    weights: str | Path,
    data_dir: str | Path,
    out_dir: str | Path = "export",
    imgsz: int | None = None,
    conf: float = 0.25,
    iou: float = 0.7,
    samples: int = 4,
) -> dict[str, Any]:
    """Export ``weights`` to ``out_dir/yolo_spine.onnx`` (verified), and write the manifest's detector section."""
    weights, data_dir, out_dir = Path(weights), Path(data_dir), Path(out_dir)
    if not weights.is_file():
        raise MissingFileError(f"{weights}: no such weights file; train the detector first (make train-yolo)")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(PROJECT_ULTRALYTICS_DIR.resolve()))
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    ensure_ultralytics_config_dir()
    from ultralytics import YOLO

    from dernet.datasets.tables import read_summary

    options = SpineOptions.for_run(weights.resolve().parent.parent)
    model = YOLO(str(weights), task="detect")
    imgsz = int(imgsz or model.ckpt.get("train_args", {}).get("imgsz", 640))
    names = [model.names[i] for i in range(len(model.names))]
    if tuple(names) != CLASS_NAMES:
        raise UsageError(f"{weights}: class names {names} are not the VinDr-SpineXR classes {list(CLASS_NAMES)}")
    cache_long_side = int(read_summary(data_dir)["params"]["long_side"])
    inputs = _sample_inputs(data_dir, imgsz, options, samples)

    with tempfile.TemporaryDirectory() as tmp:
        # Ultralytics writes the .onnx beside the weights: export from a private copy instead.
        private = Path(tmp) / "yolo_spine.pt"
        shutil.copyfile(weights, private)
        exporter = YOLO(str(private), task="detect")
        with _quiet_ultralytics():
            onnx_path = Path(
                exporter.export(format="onnx", imgsz=imgsz, nms=False, dynamic=False, simplify=False,
                                batch=1, device="cpu", verbose=False)
            )  # fmt: skip
        check_onnx(onnx_path)
        matched = _verify(model, onnx_path, inputs, conf, iou)
        out_dir.mkdir(parents=True, exist_ok=True)
        digest = install_model_file(onnx_path, out_dir / "yolo_spine.onnx")

    section = {
        "file": "yolo_spine.onnx",
        "sha256": digest,
        "imgsz": imgsz,
        "class_names": names,
        "conf": conf,
        "iou": iou,
        "max_det": 300,
        "nms_in_graph": False,
        "nms_reason": NMS_REASON,
        "output_layout": "[1, 4 + classes, anchors]: cx, cy, w, h in input pixels, then class scores",
        "verified_boxes": matched,
    }
    update_manifest(
        out_dir,
        "detector",
        section,
        preprocessing=preprocessing_dict(cache_long_side, options.clahe),
        rejection=rejection_dict(),
        provenance={"detector_weights": str(weights), "data": str(data_dir)},
    )
    return section


@contextlib.contextmanager
def _quiet_ultralytics():
    """Ultralytics logs its export banner at INFO whatever ``verbose`` says; keep warnings only."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def _sample_inputs(data_dir: Path, imgsz: int, options: SpineOptions, count: int) -> list[np.ndarray]:
    """Detector inputs [1, 3, S, S] from the prepared val split, made as the gate makes them."""
    from dernet.datasets.tables import read_table, split_rows

    rows = split_rows(read_table(data_dir), "val")
    rows = rows.sort_values("abnormal", ascending=False, kind="stable").head(count)  # images with lesions first
    inputs = []
    for row in rows.itertuples():
        cached = cv2.imread(str(data_dir / row.path), cv2.IMREAD_GRAYSCALE)
        if cached is not None:
            inputs.append(detector_array(cached, imgsz, options.clahe)[0])
    if not inputs:
        raise MissingFileError(f"{data_dir}: no readable validation images to verify the export with")
    return inputs


def _verify(model, onnx_path: Path, inputs: list[np.ndarray], conf: float, iou: float) -> int:
    """ONNX Runtime against PyTorch on the same inputs, anchor by anchor and then after NMS.

    Anchor by anchor: every class score within 1e-3 and every candidate box (best score >= 0.001) with IoU >= 0.99.
    After NMS at the gate's default ``conf``: every PyTorch box has an ONNX Runtime box of the same class with
    IoU >= 0.99 and score within 1e-3. (NMS alone is not enough for a barely trained model: its scores tie, and
    a 1e-6 difference can pick another winner among equals.) Returns the number of boxes matched after NMS.
    """
    import torch

    session = ort_session(onnx_path)
    torch_model = model.model.float().eval()
    matched = 0
    for tensor in inputs:
        with torch.inference_mode():
            raw = torch_model(torch.from_numpy(tensor))
        expected = (raw[0] if isinstance(raw, (list, tuple)) else raw).numpy()[0]
        got = session.run(None, {session.get_inputs()[0].name: tensor})[0][0]
        _compare_anchors(expected, got, onnx_path)
        matched += _match(decode_detections(expected, conf, iou), decode_detections(got, conf, iou), conf, onnx_path)
    return matched


def _compare_anchors(expected: np.ndarray, got: np.ndarray, path: Path) -> None:
    if expected.shape != got.shape:
        raise ExportVerificationError(f"{path}: output shape {got.shape} in ONNX Runtime, {expected.shape} in torch")
    score_diff = float(np.abs(expected[4:] - got[4:]).max())
    candidates = expected[4:].max(axis=0) >= 1e-3
    ious = _iou_pairs(_xyxy(expected[:4, candidates]), _xyxy(got[:4, candidates]))
    if score_diff > SCORE_TOLERANCE or (ious.size and ious.min() < IOU_MATCH):
        raise ExportVerificationError(
            f"{path}: ONNX Runtime disagrees with PyTorch (max score difference {score_diff:.2e}, lowest box IoU "
            f"{ious.min() if ious.size else 1:.4f}); not exported"
        )


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = cxcywh
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _match(expected: Detections, got: Detections, conf: float, path: Path) -> int:
    # A box scoring within the tolerance of the threshold may fall on either side of it: not a disagreement.
    for i in np.flatnonzero(expected.scores >= conf + SCORE_TOLERANCE):
        same_class = got.classes == expected.classes[i]
        ious = _iou_pairs(np.repeat(expected.boxes[i : i + 1], same_class.sum(), axis=0), got.boxes[same_class])
        close = np.abs(got.scores[same_class] - expected.scores[i]) <= SCORE_TOLERANCE
        if not (close & (ious >= IOU_MATCH)).any():
            raise ExportVerificationError(
                f"{path}: the PyTorch box {expected.boxes[i].round(1).tolist()} (class {expected.classes[i]}, score "
                f"{expected.scores[i]:.4f}) has no ONNX Runtime twin (IoU >= {IOU_MATCH}, score within "
                f"{SCORE_TOLERANCE}); not exported"
            )
    return int((expected.scores >= conf + SCORE_TOLERANCE).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m yolo_spine.export", description=__doc__)
    parser.add_argument("--weights", type=Path, default=Path("runs/yolo_spine/train/weights/best.pt"))
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="the prepared dataset it trained on")
    parser.add_argument("--out", type=Path, default=Path("export"))
    parser.add_argument("--imgsz", type=int, help="default: the size the weights were trained at")
    parser.add_argument("--conf", type=float, default=0.25, help="the gate's default minimum box confidence")
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold")
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        section = export_detector(args.weights, args.data, args.out, args.imgsz, args.conf, args.iou)
        print(
            f"{args.out / section['file']}: verified ({section['verified_boxes']} boxes matched ONNX Runtime to "
            f"PyTorch), imgsz {section['imgsz']}, sha256 {section['sha256'][:12]}"
        )
        return 0

    return run_command(run, args, failures=(ExportVerificationError,))


if __name__ == "__main__":
    raise SystemExit(main())
