"""Optimizers and learning-rate schedules by name, as the YAML recipes give them: DERNet's AdamW + cosine, the
papers' SGD + momentum + warm-up and steps (a constant rate is steps with no milestones). One home for the ensemble
members and the detectors."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from ..config import ConfigError, check_choice

__all__ = ["OPTIMIZERS", "SCHEDULES", "StepSchedule", "WarmupCosine", "build_optimizer", "build_schedule"]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "step")  # cosine: over the epochs (per step after a warm-up); step: warm-up + milestones


def build_optimizer(
    params: Iterable[torch.nn.Parameter], name: str, lr: float, weight_decay: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """AdamW, or SGD with momentum, over the parameters that train."""
    check_choice("optimizer", name, OPTIMIZERS)
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_schedule(
    optimizer: torch.optim.Optimizer,
    name: str,
    epochs: int = 1,
    warmup_steps: int = 0,
    milestones: list[int] | None = None,
    gamma: float = 0.1,
    total_steps: int | None = None,
) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry: cosine annealing over ``epochs`` (stepped per epoch; with a warm-up,
    ``WarmupCosine`` over ``total_steps``, stepped per optimizer step), or ``StepSchedule`` (per optimizer step)."""
    check_choice("schedule", name, SCHEDULES)
    if name == "cosine" and warmup_steps > 0:
        if not total_steps or total_steps <= warmup_steps:
            raise ConfigError(
                f"warmup_steps {warmup_steps} needs a run longer than that (it has {total_steps} optimizer steps): "
                "lower warmup_steps or train longer"
            )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warmup_steps, total_steps))
        return {"scheduler": scheduler, "interval": "step"}
    if name == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(epochs), 1))
        return {"scheduler": scheduler, "interval": "epoch"}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, StepSchedule(warmup_steps, milestones, gamma))
    return {"scheduler": scheduler, "interval": "step"}


class StepSchedule:
    """The learning-rate factor at a step: linear warm-up from 1/1000, then gamma at each milestone (detectron2's
    WarmupMultiStepLR, which the papers' MMDetection/Detectron2 recipes use). No warm-up and no milestone: constant."""

    def __init__(self, warmup_steps: int, milestones: list[int] | None, gamma: float) -> None:
        self.warmup_steps, self.milestones, self.gamma = warmup_steps, sorted(milestones or []), gamma

    def __call__(self, step: int) -> float:
        return _warmup(step, self.warmup_steps) * self.gamma ** sum(step >= m for m in self.milestones)


class WarmupCosine:
    """The learning-rate factor at a step: the same linear warm-up as ``StepSchedule``, then a cosine from 1 to 0 over
    the remaining steps. Warm-up keeps the first steps of a randomly initialised network (EfficientNet's above all)
    from diverging; the demo's members learned in more seeds and thread counts with it."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps, self.total_steps = warmup_steps, total_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.warmup_steps)
        progress = min((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 1.0)
        return 0.5 * (1 + math.cos(math.pi * progress))


def _warmup(step: int, warmup_steps: int) -> float:
    """The linear warm-up factor both schedules share: from 1/1000 of the rate to all of it over ``warmup_steps``."""
    return 1.0 if step >= warmup_steps else 1e-3 + (1 - 1e-3) * step / warmup_steps
