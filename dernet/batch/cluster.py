"""Where a batch job runs: a local Ray started for it (every core, a capped object store), or a cluster joined by
address. A Ray already started in this process (a notebook, a test) is used as it is."""

from __future__ import annotations

import logging
import os

import ray

from ..errors import UsageError

__all__ = ["cluster_cpus", "connect", "disconnect"]


def connect(address: str | None, object_store_mb: int) -> bool:
    """Start or join Ray; whether this call started it (and so should shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "include_dashboard": False}
    if address is None:
        ray.init(num_cpus=os.cpu_count() or 1, object_store_memory=object_store_mb << 20, **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = f"cannot join the Ray cluster ({first}); is `ray start` running there?"
        raise UsageError(f"--address {address}: {reason}") from None
    return True


def disconnect(started: bool) -> None:
    if started:
        ray.shutdown()


def cluster_cpus() -> float:
    """CPUs the cluster has now (an autoscaler may add more)."""
    return float(ray.cluster_resources().get("CPU", 0))
