"""`python -m yolo_spine.export --weights runs/yolo_spine/train/weights/best.pt --data data/prepared --models export`.

The detector through Ultralytics' ONNX exporter, without NMS in the graph (the gate runs OpenCV's NMS, so one
file serves screening at conf 0.25 and evaluation at 0.001), verified against the PyTorch model after NMS, and
recorded in export/manifest.json. The training stack (the 'train' extra) is imported inside the functions that use
it, so that `python -m yolo_spine.export` on an install without it says so in one line.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dernet.classes import CLASS_NAMES
from dernet.cliutil import add_conf, add_data, add_models, probability, run_command
from dernet.deploy.detection import cxcywh_to_xyxy, decode_detections
from dernet.deploy.manifest import DetectorSpec, Preprocessing, install_model_file, update_manifest
from dernet.errors import MissingFileError, UsageError, require_extra
from dernet.export.verify import (
    IOU_MATCH,
    SCORE_TOLERANCE,
    ExportVerificationError,
    check_onnx,
    match_detections,
    ort_session,
)
from dernet.imaging import detector_array

from .glue import quiet_ultralytics, trained_imgsz, yolo_model
from .options import OPTIONS_FILE, SpineOptions, add_weights

__all__ = ["export_detector", "main"]

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
) -> DetectorSpec:
    """Export ``weights`` to ``out_dir/yolo_spine.onnx`` (verified), and write the manifest's detector section."""
    weights, data_dir, out_dir = Path(weights), Path(data_dir), Path(out_dir)
    if not weights.is_file():
        raise MissingFileError(f"{weights}: no such weights file; train the detector first (make train-yolo)")
    from dernet.datasets.cached import sample_inputs
    from dernet.datasets.preprocessing import read_data_preprocessing

    options_file = weights.resolve().parent.parent / OPTIONS_FILE
    options = SpineOptions.load(options_file)
    model = yolo_model(weights)
    imgsz = trained_imgsz(model, imgsz)
    names = [model.names[i] for i in range(len(model.names))]
    if tuple(names) != CLASS_NAMES:
        raise UsageError(f"{weights}: class names {names} are not the VinDr-SpineXR classes {list(CLASS_NAMES)}")
    cache_long_side = read_data_preprocessing(data_dir).cache_long_side
    inputs = sample_inputs(
        data_dir, "val", samples, lambda cached: detector_array(cached, imgsz, options.clahe)[0], "abnormal_first"
    )

    with tempfile.TemporaryDirectory() as tmp:
        # Ultralytics writes the .onnx beside the weights: export from a private copy instead.
        private = Path(tmp) / "yolo_spine.pt"
        shutil.copyfile(weights, private)
        exporter = yolo_model(private)
        with quiet_ultralytics():
            onnx_path = Path(
                exporter.export(format="onnx", imgsz=imgsz, nms=False, dynamic=False, simplify=False,
                                batch=1, device="cpu", verbose=False)
            )  # fmt: skip
        check_onnx(onnx_path)
        matched = _verify(model, onnx_path, inputs, conf, iou)
        out_dir.mkdir(parents=True, exist_ok=True)
        digest = install_model_file(onnx_path, out_dir / "yolo_spine.onnx")

    spec = DetectorSpec(
        file="yolo_spine.onnx",
        sha256=digest,
        imgsz=imgsz,
        class_names=tuple(names),
        conf=conf,
        iou=iou,
        nms_in_graph=False,
        nms_reason=NMS_REASON,
        verified_boxes=matched,
    )
    update_manifest(
        out_dir,
        spec,
        Preprocessing(cache_long_side, options.clahe.clip_limit, options.clahe.tile_grid),
        provenance={"detector_weights": str(weights), "data": str(data_dir)},
        trained_with=str(options_file),
    )
    return spec


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
        matched += match_detections(
            decode_detections(expected, conf, iou), decode_detections(got, conf, iou), conf, onnx_path
        )
    return matched


def _compare_anchors(expected: np.ndarray, got: np.ndarray, path: Path) -> None:
    if expected.shape != got.shape:
        raise ExportVerificationError(f"{path}: output shape {got.shape} in ONNX Runtime, {expected.shape} in torch")
    score_diff = float(np.abs(expected[4:] - got[4:]).max())
    candidates = expected[4:].max(axis=0) >= 1e-3
    ious = _iou_pairs(cxcywh_to_xyxy(expected[:4, candidates].T), cxcywh_to_xyxy(got[:4, candidates].T))
    if score_diff > SCORE_TOLERANCE or (ious.size and ious.min() < IOU_MATCH):
        raise ExportVerificationError(
            f"{path}: ONNX Runtime disagrees with PyTorch (max score difference {score_diff:.2e}, lowest box IoU "
            f"{ious.min() if ious.size else 1:.4f}); not exported"
        )


def _iou_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of aligned pairs (a[i] with b[i]). Not torchvision's box_iou, which is all-pairs: for up to 8,400 anchors its
    N x N matrix would take 280 MB to read its diagonal."""
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """The detector export's own flags (shared with `spine-cad export`)."""
    add_weights(parser)
    parser.add_argument("--imgsz", type=int, help="detector input size (default: the size the weights trained at)")
    add_conf(parser, 0.25, "; the gate's default, recorded in the manifest")
    parser.add_argument("--iou", type=probability, default=0.7, help="NMS IoU threshold, 0..1 (default: 0.7)")


def run_detector_export(args: argparse.Namespace) -> None:
    spec = export_detector(args.weights, args.data, args.models, args.imgsz, args.conf, args.iou)
    print(
        f"{args.models / spec.file}: verified ({spec.verified_boxes} boxes matched ONNX Runtime to PyTorch), "
        f"imgsz {spec.imgsz}, sha256 {spec.sha256[:12]}"
    )


def main(argv: list[str] | None = None, prog: str = "python -m yolo_spine.export") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_data(parser)
    add_models(parser, written=True)
    add_detector_arguments(parser)
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        run_detector_export(args)
        return 0

    return run_command(run, args, failures=(ExportVerificationError,))


if __name__ == "__main__":
    raise SystemExit(main())
