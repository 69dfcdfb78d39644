"""Packages whose public names live in heavy submodules import them on first use.

`python -m package` imports the package before running its `__main__`; with lazy names that import needs nothing of
the optional extras, so the command itself can say which extra is missing (dernet.cliutil.run_main).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """A module ``__getattr__`` serving each name of ``exports`` (name -> submodule) from its submodule, and the
    matching ``__all__``: ``__getattr__, __all__ = lazy_exports(__name__, {...})``."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{exports[name]}", package), name)

    return __getattr__, sorted(exports)
