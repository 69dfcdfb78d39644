"""The screening gate: exported ONNX models, DICOM/PNG/JPEG in, report and overlay out; no torch, no Ultralytics.

Read -> reject outliers -> classify (the DERNet ensemble graph) -> gate -> detect (YOLO, NMS here) -> report.
"""

from .screening import FUSION_MIN_CONFIDENCE, MODES, Finding, Screener, Screening

__all__ = ["FUSION_MIN_CONFIDENCE", "MODES", "Finding", "Screener", "Screening"]
