"""Untrusted decoding in worker processes that the operating system bounds, for the long-running front ends.

The reader validates every header and refuses what is too large, but a decoder is native code: a bug in it could
still hang, crash or exhaust memory, and in a server that would take the service down. Here each input is decoded
in a worker process (pebble's process pool) under a time limit per input and a memory limit per worker
(``RLIMIT_AS``); a worker that overruns, dies or runs out of memory is replaced, and only that input is rejected,
with a reason. The web server decodes this way; the command line can (``--isolate``).
"""

from __future__ import annotations

import multiprocessing
import os
import resource
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np
from pebble import ProcessExpired, ProcessPool

from ..imaging import DEFAULT_MAX_PIXELS, ImageMeta, ImageReadError, Source, load_windowed

__all__ = ["IsolatedReader", "IsolationLimits"]


@dataclass(frozen=True)
class IsolationLimits:
    """How untrusted decoding is bounded: worker processes, seconds per input, memory per worker."""

    workers: int = 2
    timeout_s: float = 30.0  # a release image decodes in under a second on two cores
    memory_mb: int = 3072  # address space of a worker: a 60-megapixel image decodes within it

    def __post_init__(self) -> None:
        if self.workers < 1 or self.timeout_s <= 0 or self.memory_mb < 512:
            raise ValueError(f"isolation limits need workers >= 1, timeout > 0 s and >= 512 MB, got {self}")


def _start_worker(memory_mb: int, decoder_threads: str | None) -> None:
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if decoder_threads:  # as the parent asked (dernet.imaging.set_decoder_threads), spawned workers start afresh
        os.environ["OPJ_NUM_THREADS"] = decoder_threads


def _decode(source: Source, long_side: int, name: str, max_pixels: int) -> tuple[np.ndarray, ImageMeta]:
    return load_windowed(source, long_side, name=name, max_pixels=max_pixels)


class IsolatedReader:
    """:func:`dernet.imaging.load_windowed` in bounded worker processes. Thread-safe; :meth:`close` stops them."""

    def __init__(self, limits: IsolationLimits | None = None) -> None:
        self.limits = limits or IsolationLimits()
        # spawn, not fork: a forked child would inherit the parent's ONNX Runtime and OpenCV threads mid-use
        self._pool = ProcessPool(
            max_workers=self.limits.workers,
            initializer=_start_worker,
            initargs=(self.limits.memory_mb, os.environ.get("OPJ_NUM_THREADS")),
            context=multiprocessing.get_context("spawn"),
        )

    def load_windowed(
        self, source: Source, long_side: int, name: str, max_pixels: int = DEFAULT_MAX_PIXELS
    ) -> tuple[np.ndarray, ImageMeta]:
        """As :func:`dernet.imaging.load_windowed`, plus ``timeout`` and ``too_large`` rejections from the limits."""
        if not isinstance(source, (bytes, bytearray, np.ndarray)):
            source = os.fspath(source)
        return self.run(_decode, source, long_side, name, max_pixels, name=name)

    def run(self, function: Callable, *args: Any, name: str) -> Any:
        """``function(*args)`` in a worker (a module-level function: it is pickled by name); an overrun, a crash or
        running out of memory is an :class:`ImageReadError` about input ``name``."""
        future = self._pool.schedule(function, args=args, timeout=self.limits.timeout_s)
        try:
            return future.result()
        except FutureTimeout:
            reason = f"decoding took longer than {self.limits.timeout_s:g} s and was stopped"
            raise ImageReadError(name, reason, "timeout") from None
        except MemoryError:
            reason = f"decoding needed more than the {self.limits.memory_mb} MB a decoder may take"
            raise ImageReadError(name, reason, "too_large") from None
        except ProcessExpired as err:  # a native crash, or the kernel's answer to the memory limit
            reason = f"the decoder process died (exit code {err.exitcode}) on this input and was replaced"
            raise ImageReadError(name, reason, "corrupt") from None

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()

    def __enter__(self) -> IsolatedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
