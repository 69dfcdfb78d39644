"""The node's counters, rewritten atomically to ``spool/status.json`` as they change (no patient identifiers)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..fileio import write_json_atomic

__all__ = ["COUNTERS", "NodeStatus"]

COUNTERS = ("received", "duplicates", "screened", "rejected", "errors", "forwarded", "failed")


class NodeStatus:
    def __init__(self, path: Path, queue_depth: Callable[[], int] = lambda: 0) -> None:
        self.path, self.queue_depth = path, queue_depth
        self.started = time.time()
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time, so the newest snapshot is the one left
        self.state = "starting"

    def count(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self.counts[counter] += n
        self.write()

    def set_state(self, state: str) -> None:
        self.state = state
        self.write()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
        return {
            "state": self.state,
            "pid": os.getpid(),  # a "running" left by a killed node names a process that is gone
            **counts,
            "queue_depth": self.queue_depth(),
            "uptime_s": round(time.time() - self.started, 1),
            "started_at": datetime.fromtimestamp(self.started, timezone.utc).isoformat(timespec="seconds"),
        }

    def write(self) -> None:
        with self._write_lock:
            write_json_atomic(self.path, self.snapshot())
