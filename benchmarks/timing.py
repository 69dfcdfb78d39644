"""Timing helpers: every figure is the median of ``RUNS`` timed calls after a warm-up call."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

RUNS = 5


def median_s(call: Callable[[], object], runs: int = RUNS, warmup: int = 1) -> float:
    """Median wall time of ``call()`` in seconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
