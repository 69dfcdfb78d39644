"""One imaging path for every use: reading radiographs, windowing, resizing, CLAHE and box mapping."""

from .dicom import AUTO_WINDOW_PERCENTILES, DEFAULT_MAX_PIXELS, set_decoder_threads
from .errors import REASON_CODES, ImageReadError
from .meta import ImageMeta
from .pipeline import Source, load_windowed, max_input_bytes, read_image, read_input_file, sniff_format
from .transforms import (
    ClaheParams,
    Letterbox,
    apply_clahe,
    canvas_to_original,
    classifier_array,
    classifier_canvas,
    detector_array,
    letterbox,
    model_input,
    resize_long_side,
    resize_reduced,
    resized_size,
    scale_boxes,
    to_uint8,
)

__all__ = [
    "AUTO_WINDOW_PERCENTILES",
    "DEFAULT_MAX_PIXELS",
    "REASON_CODES",
    "ClaheParams",
    "ImageMeta",
    "ImageReadError",
    "Letterbox",
    "Source",
    "apply_clahe",
    "canvas_to_original",
    "classifier_array",
    "classifier_canvas",
    "detector_array",
    "letterbox",
    "load_windowed",
    "max_input_bytes",
    "model_input",
    "read_image",
    "read_input_file",
    "resize_long_side",
    "resize_reduced",
    "resized_size",
    "scale_boxes",
    "set_decoder_threads",
    "sniff_format",
    "to_uint8",
]
