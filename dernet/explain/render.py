"""Pictures of an explanation: a panel per image (each member and the ensemble, probabilities in the captions)
and the ensemble heatmap blended over any grey image of the original's geometry (the gate's overlay)."""

from __future__ import annotations

import cv2
from matplotlib.figure import Figure

from ..deploy.report import blend_heatmap
from .explainer import Explanation

__all__ = ["render_panel"]


def render_panel(explanation: Explanation, title: str) -> Figure:
    """One tile per member and one for the weighted combination, each over the preprocessed radiograph."""
    e = explanation
    grey = e.geometry.crop(e.canvas, e.image_size)
    tiles = [
        (f"{name}\np={e.member_probabilities[name]:.3f}, weight {e.weights[name]:.2f}", e.member_heatmaps[name])
        for name in e.member_heatmaps
    ]
    decision = "ABNORMAL" if e.abnormal else "normal"
    tiles.append((f"ensemble (weighted)\np={e.probability:.3f} vs {e.threshold:.3f}: {decision}", e.heatmap))
    aspect = grey.shape[0] / grey.shape[1]
    fig = Figure(figsize=(2.6 * len(tiles), 2.6 * aspect + 0.6), dpi=150, layout="constrained")
    for ax, (caption, heatmap) in zip(fig.subplots(1, len(tiles), squeeze=False)[0], tiles, strict=True):
        blended = blend_heatmap(grey, e.geometry.crop(heatmap, e.image_size))
        ax.imshow(cv2.cvtColor(blended, cv2.COLOR_BGR2RGB))
        ax.set_title(caption, fontsize=8)
        ax.set_axis_off()
    fig.suptitle(f"{title}  ({e.method}; not for clinical use)", fontsize=9)
    return fig
