"""Explanations: Grad-CAM (grad-cam package) heatmaps of each ensemble member and of their weighted vote.

They need the PyTorch checkpoints, so nothing here is imported by the torch-free gate unless ``--explain`` asks;
names are imported on first use (dernet.lazy).
"""

from ..lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "METHODS": "cam",
        "TARGET_LAYERS": "cam",
        "member_heatmap": "cam",
        "target_layer": "cam",
        "Explainer": "explainer",
        "Explanation": "explainer",
        "combine_heatmaps": "explainer",
        "explainer_for_export": "explainer",
        "find_ensemble_json": "explainer",
    },
)
