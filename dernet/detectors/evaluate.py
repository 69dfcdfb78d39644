"""`python -m dernet.detectors.evaluate --checkpoint runs/detectors/<name>/checkpoints/best.ckpt --split test`.

The VinDr-SpineXR protocol, as for YOLO (yolo_spine.evaluate): every image of the split, the gate's canvas, boxes
down to 0.001 confidence mapped back to original pixels, COCO 101-point AP@0.5 (pycocotools, via `dernet.metrics`).
torchmetrics' MeanAveragePrecision (HealNNet's tool) on the same boxes is reported beside it. Writes
evaluation_<split>.{md,json} and pr_<split>.png in the checkpoint's run folder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..classes import CLASS_NAMES
from ..cliutil import add_conf, add_data, add_split, run_command
from ..datasets.cached import read_cached_image
from ..datasets.labels import read_row_boxes
from ..datasets.tables import read_table, split_rows
from ..deploy.detection import decode_torchvision
from ..errors import MissingFileError
from ..fileio import write_json_atomic, write_text_atomic
from ..imaging import ClaheParams, canvas_to_original, detector_array
from ..metrics import DetectionSample, average_precision_50
from .module import LesionDetector

__all__ = ["evaluate_checkpoint", "load_detector", "predict_split", "torchmetrics_map50"]


def load_detector(checkpoint: str | Path) -> LesionDetector:
    """A trained detector in eval mode on the CPU; a missing file names itself and what to run."""
    if not Path(checkpoint).is_file():
        raise MissingFileError(f"{checkpoint}: no such checkpoint; train first (make train-detector CONFIG=...)")
    return LesionDetector.load_from_checkpoint(checkpoint, map_location="cpu").eval()


def predict_split(
    module: LesionDetector, data_dir: Path, split: str, clahe: ClaheParams, conf: float = 0.001, progress: bool = True
) -> list[DetectionSample]:
    """One :class:`DetectionSample` per image of ``split``: ground truth and predictions in original pixels."""
    imgsz = module.hparams.imgsz
    rows = split_rows(read_table(data_dir), split)
    samples = []
    for row in tqdm(rows.itertuples(), total=len(rows), desc=f"{split} images", disable=not progress):
        array, geometry, image_size = detector_array(read_cached_image(data_dir / row.path), imgsz, clahe)
        with torch.inference_mode():
            found = module(list(torch.from_numpy(array)))[0]
        kept = decode_torchvision([found[k].numpy() for k in ("boxes", "labels", "scores")], conf)  # as the gate does
        original = (int(row.width), int(row.height))
        gt, gt_classes = read_row_boxes(data_dir, row)
        boxes = canvas_to_original(kept.boxes, geometry, image_size, original)
        samples.append(DetectionSample(row.image_id, *original, gt, gt_classes, boxes, kept.scores, kept.classes))
    return samples


def torchmetrics_map50(samples: list[DetectionSample]) -> float:
    """mAP@0.5 of the same boxes by torchmetrics (HealNNet's metric), 300 boxes per image like ours."""
    from torchmetrics.detection import MeanAveragePrecision

    # COCO's 101 recall points in float64, as pycocotools makes them: torchmetrics' default comes from a float32
    # torch.linspace, so a recall of exactly 0.3 falls on the other side of the 0.3 point (0.03 mAP points apart).
    metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=[0.5], max_detection_thresholds=[1, 10, 300],
                                  rec_thresholds=np.linspace(0, 1, 101).tolist(), backend="pycocotools")  # fmt: skip
    metric.warn_on_many_detections = False
    as_tensor = lambda a, dtype: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    metric.update(
        [{"boxes": as_tensor(s.boxes, torch.float32).reshape(-1, 4), "scores": as_tensor(s.scores, torch.float32),
          "labels": as_tensor(s.classes, torch.int64)} for s in samples],
        [{"boxes": as_tensor(s.gt_boxes, torch.float32).reshape(-1, 4),
          "labels": as_tensor(s.gt_classes, torch.int64)} for s in samples],
    )  # fmt: skip
    return float(metric.compute()["map_50"])


def evaluate_checkpoint(
    checkpoint: str | Path, data_dir: str | Path, split: str = "test", conf: float = 0.001, progress: bool = True
) -> dict[str, Any]:
    """Predict every image of ``split``, score with pycocotools (and torchmetrics), write the outputs."""
    from ..metrics.tables import plot_pr

    module = load_detector(checkpoint)
    data_dir = Path(data_dir)
    clahe = module.clahe_for(data_dir)
    samples = predict_split(module, data_dir, split, clahe, conf, progress)
    result = average_precision_50(samples, CLASS_NAMES)
    result.update(split=split, images=len(samples), imgsz=module.hparams.imgsz, conf=conf, checkpoint=str(checkpoint),
                  kind=module.hparams.arch, torchmetrics_map50=torchmetrics_map50(samples))  # fmt: skip
    run_dir = Path(checkpoint).resolve().parent.parent
    write_json_atomic(run_dir / f"evaluation_{split}.json", result)
    write_text_atomic(run_dir / f"evaluation_{split}.md", format_table(result) + "\n")
    plot_pr(result, run_dir / f"pr_{split}.png")
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown in the papers' column order (LT2 ... LT13, mAP), AP in percent."""
    from ..metrics.tables import detection_table

    return "\n".join([
        f"Split `{result['split']}`: {result['images']} images, {result['kind']} at {result['imgsz']} px, conf >= "
        f"{result['conf']}; AP@0.5 (COCO 101-point, pycocotools).",
        "",
        detection_table({"AP@0.5": result}),
        "",
        f"torchmetrics' MeanAveragePrecision on the same boxes: mAP@0.5 {100 * result['torchmetrics_map50']:.2f}",
    ])  # fmt: skip


def main(argv: list[str] | None = None, prog: str = "python -m dernet.detectors.evaluate") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a detector's best.ckpt (or last.ckpt)")
    add_data(parser)
    add_split(parser)
    add_conf(parser, 0.001, "; evaluation counts every box")
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.conf)
        print(format_table(result))
        run_dir = args.checkpoint.resolve().parent.parent
        print(f"\nwritten: evaluation_{args.split}.{{md,json}} and pr_{args.split}.png in {run_dir}")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
