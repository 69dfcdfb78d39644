"""How much one web server takes on; light, so that the command line can show the defaults without FastAPI."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """How much one server takes on (each a command-line option of `python -m dernet.web`)."""

    max_upload_mb: float = 100.0  # larger uploads are refused with 413 while they stream
    max_pending: int = 256  # analyze requests in hand (uploading, waiting, screening); beyond: 503 at once
    max_concurrent: int = 0  # screenings at the same time (0: one per core); the rest wait their turn
    queue_timeout_s: float = 60.0  # how long a request may wait for its turn before a 503
