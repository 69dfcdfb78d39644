"""Explanations: Grad-CAM (grad-cam package) heatmaps of each ensemble member and of their weighted vote.

They need the PyTorch checkpoints, so nothing here is imported by the torch-free gate unless ``--explain`` asks.
"""

from .cam import METHODS, TARGET_LAYERS, member_heatmap, target_layer
from .explainer import Explainer, Explanation, combine_heatmaps, find_ensemble_json

__all__ = [
    "METHODS",
    "TARGET_LAYERS",
    "Explainer",
    "Explanation",
    "combine_heatmaps",
    "find_ensemble_json",
    "member_heatmap",
    "target_layer",
]
