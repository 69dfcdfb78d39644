"""Run a module the way `python -m MODULE ARGS...` does, but with the modules of some optional extras made
unimportable, as on an install without them: `python tests/without_extras.py train,web MODULE [ARGS...]`.

CI also proves the real small install (.ci/small_install.sh); this lets the fast suite check every command.
"""

from __future__ import annotations

import runpy
import sys
from importlib.abc import MetaPathFinder

from dernet.errors import EXTRA_OF_MODULE


class BlockExtras(MetaPathFinder):
    """Refuses to find the top-level modules of the given extras, as if they were not installed."""

    def __init__(self, extras: set[str]) -> None:
        self.blocked = {module for module, extra in EXTRA_OF_MODULE.items() if extra in extras}

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.blocked:
            raise ModuleNotFoundError(f"No module named '{name}' (blocked by tests/without_extras.py)", name=name)
        return None


if __name__ == "__main__":
    extras, module, *args = sys.argv[1:]
    sys.meta_path.insert(0, BlockExtras(set(extras.split(","))))
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
