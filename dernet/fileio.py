"""Atomic writes: a killed run never leaves a half-written file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "write_bytes_atomic",
    "write_figure_atomic",
    "write_json_atomic",
    "write_png_atomic",
    "write_text_atomic",
]


FILE_MODE = 0o644


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write to a hidden temp file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 files; outputs are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_png_atomic(path: str | os.PathLike, image: np.ndarray, compression: int = 1) -> None:
    """Encode ``image`` as PNG (fast compression by default: the cache favours speed over size)."""
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())


def write_figure_atomic(fig: Any, path: str | os.PathLike) -> None:
    """Save a matplotlib figure to ``path`` (format from its suffix) through a temp file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    fig.savefig(tmp)
    os.replace(tmp, path)
