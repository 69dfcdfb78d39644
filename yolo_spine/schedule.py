"""The mosaic cutoff epoch, in Ultralytics' own terms."""

from __future__ import annotations

__all__ = ["close_mosaic_for"]


def close_mosaic_for(epochs: int, mosaic_cutoff_epoch: int) -> int:
    """Ultralytics' ``close_mosaic`` (mosaic off in the final N epochs) for "mosaic on in the first
    ``mosaic_cutoff_epoch`` epochs, off from the next one".

    Ultralytics turns mosaic off when the 0-based epoch >= epochs - close_mosaic, and 0 means never: a cutoff
    at or beyond the last epoch keeps mosaic on throughout; a cutoff of 0 or less turns it off from the start.
    """
    if mosaic_cutoff_epoch >= epochs:
        return 0
    return epochs - max(mosaic_cutoff_epoch, 0)
