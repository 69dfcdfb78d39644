"""Pixel transforms shared by preparation, both trainers and the gate: resize, 8-bit, CLAHE, box mapping."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DEFAULT_CLAHE",
    "ClaheParams",
    "Letterbox",
    "apply_clahe",
    "canvas_to_original",
    "classifier_array",
    "classifier_canvas",
    "detector_array",
    "letterbox",
    "model_input",
    "resize_long_side",
    "resize_reduced",
    "resized_size",
    "scale_boxes",
    "to_uint8",
]


@dataclass(frozen=True)
class ClaheParams:
    """Contrast-limited adaptive histogram equalisation settings (the papers use clip 2.0, 8x8 tiles)."""

    clip_limit: float = 2.0
    tile_grid: int = 8


def resized_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(width, height) after scaling so that the longer side equals ``long_side``, aspect kept."""
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_long_side(image: np.ndarray, long_side: int, original_size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize so the long side is ``long_side``.

    ``original_size`` (width, height) fixes the output size from the original image's geometry, so an image
    decoded at a reduced resolution level comes out exactly as large as a full decode would.
    """
    height, width = image.shape[:2]
    out_w, out_h = resized_size(*(original_size or (width, height)), long_side)
    if (out_w, out_h) == (width, height):
        return image
    shrinking = out_w * out_h < width * height
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (out_w, out_h), interpolation=interpolation)


def resize_reduced(image: np.ndarray, level: int, original_size: tuple[int, int], long_side: int) -> np.ndarray:
    """Resize an image decoded at JPEG 2000 level ``level`` to the long side, on the original's pixel grid.

    A reduced JPEG 2000 sample j is the wavelet low-pass centred on original pixel 2**level * j, not the
    mean of a 2**level block, so the reduced image sits (2**level - 1) / 2 original pixels off the grid an
    area resize assumes. A sub-pixel shift puts it back before the usual area resize.
    """
    if level:
        shift = (2**level - 1) / 2 ** (level + 1)  # in reduced pixels
        to_source = np.array([[1.0, 0.0, shift], [0.0, 1.0, shift]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        image = cv2.warpAffine(image, to_source, image.shape[1::-1], flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return resize_long_side(image, long_side, original_size)


def to_uint8(image01: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] to uint8, rounding to nearest."""
    return np.clip(image01 * 255.0 + 0.5, 0, 255).astype(np.uint8)


DEFAULT_CLAHE = ClaheParams()


def apply_clahe(image: np.ndarray, params: ClaheParams = DEFAULT_CLAHE) -> np.ndarray:
    """OpenCV CLAHE on an 8-bit grayscale image (deterministic for the same input and parameters)."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"CLAHE expects a 2-D uint8 image, got {image.dtype} with shape {image.shape}")
    clahe = cv2.createCLAHE(clipLimit=params.clip_limit, tileGridSize=(params.tile_grid, params.tile_grid))
    return clahe.apply(image)


def scale_boxes(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Map [x1, y1, x2, y2] boxes from an image of size (w, h) ``from_size`` to one of size ``to_size``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return boxes * np.array([sx, sy, sx, sy])


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a square canvas: scale, then padding on the left and top."""

    scale: float
    pad_x: float
    pad_y: float

    def to_original(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Map [x1, y1, x2, y2] boxes on the canvas back to the original image, clipped to it."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, original_size[0])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, original_size[1])
        return boxes

    def crop(self, canvas_map: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """The part of a canvas-sized array (a heatmap, say) that covers the letterboxed image of size (w, h)."""
        x, y = round(self.pad_x), round(self.pad_y)
        return canvas_map[y : y + image_size[1], x : x + image_size[0]]


def canvas_to_original(
    boxes: np.ndarray, geometry: Letterbox, image_size: tuple[int, int], original_size: tuple[int, int]
) -> np.ndarray:
    """Detector boxes on the letterboxed canvas to the original image's pixels: off the canvas onto the resized image
    of size (w, h) ``image_size``, then up to ``original_size``. The gate and every detector's evaluation use it."""
    return scale_boxes(geometry.to_original(boxes, image_size), image_size, original_size)


def model_input(windowed: np.ndarray, long_side: int, clahe: ClaheParams = DEFAULT_CLAHE) -> np.ndarray:
    """A model's input from a windowed 8-bit image: resize to the model's long side, then CLAHE.

    CLAHE always runs at the model's own input resolution (its tiles then cover the same anatomy whatever the
    source size): the trainers call this on the prepared cache, the gate on the file read by ``load_windowed``.
    """
    return apply_clahe(resize_long_side(windowed, long_side), clahe)


def classifier_canvas(image: np.ndarray, size: int) -> np.ndarray:
    """The classifiers' square input: a model input (long side ``size``) centred on a black square canvas."""
    return letterbox(image, size, pad_value=0)[0]


def letterbox(image: np.ndarray, size: int, pad_value: int = 114) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` into a ``size`` x ``size`` canvas, centred, aspect kept (Ultralytics' convention).

    Written here rather than imported from Ultralytics because the gate must run without it.
    """
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR) if scale != 1 else image
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    top, left = round(pad_y - 0.1), round(pad_x - 0.1)
    canvas = cv2.copyMakeBorder(
        resized,
        top,
        size - new_h - top,
        left,
        size - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value,) * 3,
    )
    return canvas, Letterbox(scale=scale, pad_x=left, pad_y=top)


def classifier_array(windowed: np.ndarray, size: int, clahe: ClaheParams = DEFAULT_CLAHE) -> np.ndarray:
    """The exported classifier's input [1, 1, size, size] float32 in [0, 1] from a windowed 8-bit image."""
    canvas = classifier_canvas(model_input(windowed, size, clahe), size)
    return canvas[None, None].astype(np.float32) / 255


def detector_array(
    windowed: np.ndarray, imgsz: int, clahe: ClaheParams = DEFAULT_CLAHE
) -> tuple[np.ndarray, Letterbox, tuple[int, int]]:
    """The exported detector's input [1, 3, imgsz, imgsz] float32 in [0, 1] (grey replicated, letterboxed), how it
    was letterboxed, and the (width, height) of the resized image the letterbox holds (to map boxes back)."""
    image = model_input(windowed, imgsz, clahe)
    canvas, geometry = letterbox(image, imgsz)
    array = np.broadcast_to(canvas[None, None], (1, 3, imgsz, imgsz)).astype(np.float32) / 255
    return array, geometry, (image.shape[1], image.shape[0])
