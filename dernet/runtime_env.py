"""Keep Ultralytics' settings inside the project and let it find a font without the network.

Ultralytics downloads `Arial.ttf` into its config folder the first time it draws labels or checks a
dataset; any TTF under that name satisfies it. This never sets the offline switches: a user with internet
keeps it. Tests, CI and the demo add those themselves (Makefile, tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["PROJECT_ULTRALYTICS_DIR", "ensure_ultralytics_config_dir"]

PROJECT_ULTRALYTICS_DIR = Path(".ultralytics")
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def ensure_ultralytics_config_dir(config_dir: str | os.PathLike | None = None) -> Path:
    """Create Ultralytics' config folder ($YOLO_CONFIG_DIR, else ./.ultralytics) with local fonts."""
    import matplotlib  # a dependency of Ultralytics, and it ships DejaVuSans

    target = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or PROJECT_ULTRALYTICS_DIR)
    target.mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in _FONT_NAMES:
        if not (target / name).exists():
            shutil.copyfile(font, target / name)
    return target


if __name__ == "__main__":
    print(ensure_ultralytics_config_dir())
