"""`python -m yolo_spine.evaluate`: per-class AP@0.5 and mAP@0.5 of a trained detector on a prepared split.

VinDr-SpineXR protocol: every image of the split (false positives on normal images count), predictions at a
low confidence (0.001), boxes mapped back to original pixels, COCO 101-point AP at IoU 0.5 (pycocotools, via
`dernet.metrics`). Ultralytics' own val mAP50 is reported beside it. Writes evaluation_<split>.{md,json} and
pr_<split>.png next to the weights' run folder.

The training stack (the 'train' extra) is imported inside the functions that use it, so that `python -m
yolo_spine.evaluate` on an install without it says so in one line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from dernet.classes import CLASS_NAMES
from dernet.cliutil import add_conf, add_data, add_split, run_command
from dernet.datasets.labels import read_row_boxes
from dernet.errors import MissingFileError, require_extra
from dernet.fileio import write_json_atomic, write_text_atomic
from dernet.imaging import ClaheParams, model_input

from .glue import trained_imgsz, yolo_model
from .options import SpineOptions, add_weights

__all__ = ["evaluate_detector", "format_table", "main", "predict_samples"]


def evaluate_detector(
    weights: Path,
    data_dir: Path,
    split: str = "test",
    imgsz: int | None = None,
    conf: float = 0.001,
    iou: float = 0.7,
    ultralytics_val: bool = True,
) -> dict[str, Any]:
    """Predict every image of ``split`` with the checkpoint, score with pycocotools, write the outputs."""
    from dernet.metrics import average_precision_50
    from dernet.metrics.tables import plot_pr

    from .validator import SpineDetectionValidator

    if not Path(weights).is_file():
        raise MissingFileError(f"{weights}: no such weights file; train first (make train-yolo)")
    run_dir = Path(weights).resolve().parent.parent
    options = SpineOptions.for_run(run_dir, data_dir)
    model = yolo_model(weights)
    imgsz = trained_imgsz(model, imgsz)
    samples = predict_samples(model, Path(data_dir), split, imgsz, conf, iou, options.clahe)
    result = average_precision_50(samples, CLASS_NAMES)
    result.update(split=split, images=len(samples), imgsz=imgsz, conf=conf, weights=str(weights))
    if ultralytics_val:
        metrics = model.val(
            validator=SpineDetectionValidator.with_options(options),
            data=str(Path(data_dir) / "data.yaml"),
            split=split,
            imgsz=imgsz,
            conf=conf,
            plots=False,
            verbose=False,
            project=str(run_dir),
            name=f"val_{split}",
            exist_ok=True,
        )
        result["ultralytics_map50"] = float(metrics.box.map50)
    write_json_atomic(run_dir / f"evaluation_{split}.json", result)
    write_text_atomic(run_dir / f"evaluation_{split}.md", format_table(result) + "\n")
    plot_pr(result, run_dir / f"pr_{split}.png")
    return result


def predict_samples(
    model, data_dir: Path, split: str, imgsz: int, conf: float, iou: float, clahe: ClaheParams
) -> list:
    """One :class:`dernet.metrics.DetectionSample` per image of ``split``."""
    from dernet.datasets.cached import read_cached_image
    from dernet.datasets.tables import read_table, split_rows
    from dernet.metrics import DetectionSample

    samples = []
    for row in split_rows(read_table(data_dir), split).itertuples():
        image = cv2.cvtColor(model_input(read_cached_image(data_dir / row.path), imgsz, clahe), cv2.COLOR_GRAY2BGR)
        pred = model.predict(image, imgsz=imgsz, conf=conf, iou=iou, max_det=300, verbose=False)[0].boxes
        scale = np.array([row.width / image.shape[1], row.height / image.shape[0]] * 2)
        gt, gt_classes = read_row_boxes(data_dir, row)
        samples.append(
            DetectionSample(
                row.image_id,
                int(row.width),
                int(row.height),
                gt,
                gt_classes,
                pred.xyxy.cpu().numpy() * scale,
                pred.conf.cpu().numpy(),
                pred.cls.cpu().numpy().astype(int),
            )
        )
    return samples


def format_table(result: dict[str, Any]) -> str:
    """Markdown in the papers' column order (LT2 ... LT13, mAP), AP in percent."""
    from dernet.metrics.tables import detection_table

    lines = [
        f"Split `{result['split']}`: {result['images']} images, imgsz {result['imgsz']}, conf >= {result['conf']}; "
        "AP@0.5 (COCO 101-point, pycocotools).",
        "",
        detection_table({"AP@0.5": result}),
    ]
    if "ultralytics_map50" in result:
        lines += ["", f"Ultralytics' own val mAP50 on the same split: {100 * result['ultralytics_map50']:.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "python -m yolo_spine.evaluate") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_weights(parser)
    add_data(parser)
    add_split(parser)
    parser.add_argument("--imgsz", type=int, help="default: the size the weights were trained at")
    add_conf(parser, 0.001, "; evaluation counts every box")
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        result = evaluate_detector(args.weights, args.data, args.split, args.imgsz, args.conf)
        print(format_table(result))
        print(f"\nwritten: evaluation_{args.split}.{{md,json}} and pr_{args.split}.png in {args.weights.parent.parent}")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
