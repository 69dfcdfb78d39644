"""Latency measurement shared by the export's variant timing and `make bench`."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

__all__ = ["median_s"]


def median_s(call: Callable[[], object], runs: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``call()`` in seconds over ``runs`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
