"""The seed papers' detectors beside YOLO11: torchvision's Faster R-CNN and RetinaNet, trained by Lightning on the
same prepared data and the same input path (dernet.imaging's letterboxed canvas) as YOLO, so the gate can run them.

Layer 3 (training); :mod:`.evaluate` and :mod:`.export` are layer 4.
"""

from .models import ARCHITECTURES, BACKBONES, build_detector

__all__ = ["ARCHITECTURES", "BACKBONES", "build_detector"]
