"""VinDr-SpineXR data: the release format, preparation into a training cache, study-level splits, phantoms.

Names are imported on first use, so that light submodules (the prepare worker) do not pull in pandas and
scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CLASS_NAMES": "vindr",
    "PAPER_ORDER": "vindr",
    "PrepareConfig": "prepare",
    "PrepareResult": "prepare",
    "prepare_dataset": "prepare",
    "phantom_plan": "synth",
    "read_table": "tables",
    "split_rows": "tables",
    "synthesize": "synth",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
