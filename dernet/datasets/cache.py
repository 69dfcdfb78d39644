"""One image of `prepare`: decode, window, resize, cache as PNG, write its YOLO labels.

Kept apart from the orchestration so that worker processes import only the imaging path (no pandas or
scikit-learn): with the spawn start method every worker imports this module afresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import pydicom
from PIL import Image

from ..fileio import write_png_atomic, write_text_atomic
from ..imaging import ImageReadError, load_windowed, resized_size
from .labels import Box, yolo_label_lines

__all__ = ["ImageJob", "ImageResult", "init_worker", "prepare_image"]


@dataclass(frozen=True)
class ImageJob:
    """What a worker needs to prepare one image (picklable, for worker processes)."""

    image_id: str
    source: Path
    split: str
    boxes: tuple[Box, ...]
    out_dir: Path
    long_side: int
    min_box_px: float


@dataclass
class ImageResult:
    """What became of one image: its original size, dropped boxes, or the one-line error that skipped it."""

    image_id: str
    split: str
    width: int = 0
    height: int = 0
    dropped_boxes: int = 0
    error: str | None = None
    reused: bool = False


def init_worker() -> None:
    # The pool already uses every core: OpenCV's and OpenJPEG's own threads would oversubscribe them.
    cv2.setNumThreads(1)
    os.environ["OPJ_NUM_THREADS"] = "1"  # read by OpenJPEG at each decode (dernet.imaging.set_decoder_threads)


def prepare_image(job: ImageJob) -> ImageResult:
    """Cache one image and write its labels; errors are returned, not raised: one file never stops a run."""
    result = ImageResult(job.image_id, job.split)
    png = job.out_dir / "images" / job.split / f"{job.image_id}.png"
    try:
        reused = _cached_size(png, job)
        if reused:
            result.width, result.height, result.reused = *reused, True
        else:
            windowed, meta = load_windowed(job.source, job.long_side, name=str(job.source))
            write_png_atomic(png, windowed)
            result.width, result.height = meta.width, meta.height
    except ImageReadError as err:
        result.error = str(err)
        return result
    except OSError as err:
        result.error = f"{job.source}: {err}"
        return result
    lines, result.dropped_boxes = yolo_label_lines(job.boxes, result.width, result.height, job.min_box_px)
    label = job.out_dir / "labels" / job.split / f"{job.image_id}.txt"
    write_text_atomic(label, "".join(line + "\n" for line in lines))
    return result


def _cached_size(png: Path, job: ImageJob) -> tuple[int, int] | None:
    """The original (width, height) if ``png`` is a finished cache of this image, else None."""
    if not png.is_file() or not job.source.is_file():
        return None
    try:
        header = pydicom.dcmread(job.source, stop_before_pixels=True)
        width, height = int(header.Columns), int(header.Rows)
    except Exception:  # not a readable DICOM header: decode again, which reports the real reason
        return None
    with Image.open(png) as cached:  # reads the header only
        if cached.size != resized_size(width, height, job.long_side):
            return None
    return width, height
