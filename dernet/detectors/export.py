"""`python -m dernet.detectors.export --checkpoint runs/detectors/<name>/checkpoints/best.ckpt --models export`.

A torchvision detector to ONNX with its own post-processing (score filter at 0.001, per-class NMS, top 300) in the
graph: torchvision's exported graphs end in boxes, labels and scores, so the gate only filters by confidence
(:func:`dernet.deploy.detection.decode_torchvision`). Verified against PyTorch on prepared validation images before
it replaces anything, then recorded as the manifest's detector, with its kind, so every front end runs it.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..classes import CLASS_NAMES
from ..cliutil import add_conf, add_data, add_models, run_command
from ..datasets.cached import sample_inputs
from ..datasets.preprocessing import read_data_preprocessing
from ..deploy.detection import TORCHVISION_LAYOUT, decode_torchvision
from ..deploy.manifest import DetectorSpec, Preprocessing, add_detector, install_model_file, update_manifest
from ..export.verify import ExportVerificationError, check_onnx, match_detections, ort_session
from ..imaging import detector_array
from .evaluate import load_detector
from .module import LesionDetector

__all__ = ["export_torchvision_detector", "main"]

OPSET = 17
OUTPUTS = ("boxes", "labels", "scores")
NMS_REASON = (
    "torchvision's own post-processing is in the graph (score >= 0.001, per-class NMS, top 300); the gate keeps the "
    "boxes at or above its confidence, so one file serves screening and evaluation"
)


class CanvasDetector(nn.Module):
    """[1, 3, S, S] canvas in [0, 1] -> boxes [K, 4] (canvas pixels), labels [K] (class id + 1), scores [K]."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        found = self.detector(list(images))[0]
        return found["boxes"], found["labels"], found["scores"]


def export_torchvision_detector(
    checkpoint: str | Path,
    data_dir: str | Path,
    out_dir: str | Path = "export",
    conf: float = 0.25,
    samples: int = 4,
    add: bool = False,
    module: LesionDetector | None = None,
) -> DetectorSpec:
    """Export ``checkpoint`` to ``out_dir/<arch>.onnx`` (verified) and write the manifest's detector section, or with
    ``add`` list it beside the export's detector, for box fusion (python -m dernet.detectors.fuse then chooses it).
    ``module`` is the checkpoint already loaded, when the caller has it."""
    module = load_detector(checkpoint) if module is None else module
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    arch, imgsz = module.hparams.arch, int(module.hparams.imgsz)
    clahe = module.clahe_for(data_dir)
    inputs = sample_inputs(data_dir, "val", samples, lambda c: detector_array(c, imgsz, clahe)[0], "abnormal_first")
    graph = CanvasDetector(module.model).eval()
    name = f"{arch}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / name
        with warnings.catch_warnings():  # the tracer's notes on torchvision's shape arithmetic: expected, harmless
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (torch.from_numpy(inputs[0]),), str(onnx_path), opset_version=OPSET,
                              input_names=["images"], output_names=list(OUTPUTS), dynamo=False)  # fmt: skip
        check_onnx(onnx_path)
        matched = _verify(graph, onnx_path, inputs, conf)
        out_dir.mkdir(parents=True, exist_ok=True)
        digest = install_model_file(onnx_path, out_dir / name)
    nms_iou = module.model.roi_heads.nms_thresh if hasattr(module.model, "roi_heads") else module.model.nms_thresh
    spec = DetectorSpec(
        file=name,
        sha256=digest,
        imgsz=imgsz,
        class_names=CLASS_NAMES,
        conf=conf,
        iou=float(nms_iou),
        nms_in_graph=True,
        nms_reason=NMS_REASON,
        output_layout=TORCHVISION_LAYOUT,
        verified_boxes=matched,
        kind=arch,
    )
    preprocessing = Preprocessing(read_data_preprocessing(data_dir).cache_long_side, clahe.clip_limit, clahe.tile_grid)
    if add:
        add_detector(out_dir, spec, preprocessing, trained_with=str(checkpoint))
    else:
        update_manifest(out_dir, spec, preprocessing, provenance={"detector_weights": str(checkpoint),
                        "data": str(data_dir)}, trained_with=str(checkpoint))  # fmt: skip
    return spec


def _verify(graph: CanvasDetector, onnx_path: Path, inputs: list[np.ndarray], conf: float) -> int:
    """Every PyTorch box at or above the screening ``conf`` has an ONNX Runtime twin (same class, IoU >= 0.99, score
    within 1e-3) on each input, and the other way round; the number of boxes matched. Not lower, as for YOLO: far
    below it the graph keeps the top 1,000 anchors per level out of many near-equal scores, and either runtime may
    keep a different one of equals."""
    session = ort_session(onnx_path)
    matched = 0
    for tensor in inputs:
        with torch.inference_mode():
            expected = [t.numpy() for t in graph(torch.from_numpy(tensor))]
        got = session.run(None, {"images": tensor})
        expected_boxes, got_boxes = decode_torchvision(expected, conf), decode_torchvision(got, conf)
        matched += match_detections(expected_boxes, got_boxes, conf, onnx_path)
        match_detections(got_boxes, expected_boxes, conf, onnx_path)
    return matched


def main(argv: list[str] | None = None, prog: str = "python -m dernet.detectors.export") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a detector's best.ckpt (or last.ckpt)")
    add_data(parser)
    add_models(parser, written=True)
    add_conf(parser, 0.25, "; the gate's default, recorded in the manifest")
    parser.add_argument("--add", action="store_true", help="list it beside the export's detector, for box fusion "
                        "(then: python -m dernet.detectors.fuse), instead of replacing it")  # fmt: skip
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        spec = export_torchvision_detector(args.checkpoint, args.data, args.models, args.conf, add=args.add)
        print(f"{args.models / spec.file}: verified ({spec.verified_boxes} boxes matched ONNX Runtime to PyTorch), "
              f"{spec.kind} at {spec.imgsz} px, sha256 {spec.sha256[:12]}")  # fmt: skip
        return 0

    return run_command(run, args, failures=(ExportVerificationError,))


if __name__ == "__main__":
    raise SystemExit(main())
