"""Timing helpers: every figure is the median of ``RUNS`` timed calls after a warm-up call (dernet.timing)."""

from __future__ import annotations

from dernet.timing import median_s

__all__ = ["RUNS", "median_s", "ms"]

RUNS = 5


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
