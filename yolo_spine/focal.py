"""Focal classification loss for Ultralytics' detection loss, by swapping its element-wise BCE.

`v8DetectionLoss` computes its class loss as ``self.bce(pred_scores, target_scores)`` with an element-wise
`BCEWithLogitsLoss(reduction="none")`, summed and divided by the sum of the (soft, IoU-aware) targets.
Replacing that one module keeps everything else (assignment, normalization, class weights) as it is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FocalBCE", "install_focal_loss"]


class FocalBCE(nn.Module):
    """Element-wise focal BCE with logits for soft targets t in [0, 1] (reduction none).

    loss = BCE(x, t) * (1 - p_t)^gamma * alpha_t, with p_t = t p + (1 - t)(1 - p) and
    alpha_t = t alpha + (1 - t)(1 - alpha) (no alpha weighting when alpha is None).
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = None) -> None:
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        probs = logits.sigmoid()
        p_t = targets * probs + (1 - targets) * (1 - probs)
        loss = loss * (1 - p_t).pow(self.gamma)
        if self.alpha is not None:
            loss = loss * (targets * self.alpha + (1 - targets) * (1 - self.alpha))
        return loss


def install_focal_loss(model: nn.Module, gamma: float, alpha: float | None) -> nn.Module:
    """Give ``model`` its usual criterion with the class BCE replaced by :class:`FocalBCE`; returns it.

    Ultralytics strips the criterion from saved checkpoints, so they stay plain `DetectionModel`s.
    """
    criterion = model.init_criterion()
    losses = [criterion, *(v for v in vars(criterion).values() if hasattr(v, "bce"))]  # E2E heads nest two
    for loss in losses:
        if isinstance(getattr(loss, "bce", None), nn.BCEWithLogitsLoss):
            loss.bce = FocalBCE(gamma, alpha)
    model.criterion = criterion
    return criterion
