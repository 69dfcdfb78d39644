"""Atomic writes: a killed run never leaves a half-written file that looks complete.

Each write goes to a hidden temp file named after the writing process (``.<name>.<pid>.<random>.tmp``), then is
renamed into place. A killed run can leave such temp files behind; :func:`remove_stale_temp_files` removes those
whose process is gone, so the next run into the same folder cleans up after it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = [
    "remove_stale_temp_files",
    "write_bytes_atomic",
    "write_figure_atomic",
    "write_json_atomic",
    "write_png_atomic",
    "write_text_atomic",
]


FILE_MODE = 0o644
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp(\.\w+)?$")  # .<name>.<pid>.<random>.tmp[.<format>]


def _temp_file(path: Path, suffix: str = "") -> tuple[int, str]:
    return tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    """Write to a hidden temp file beside ``path``, then rename it into place. ``durable``: fsync the file before
    the rename and the folder after it, so the file survives a power cut once this returns (a network peer is told
    "stored" only then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600 files; outputs are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


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
    fd, tmp = _temp_file(path, path.suffix)  # matplotlib reads the format off the suffix
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Remove the temp files under ``folder`` that a killed writer left (its process is gone); how many."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp*"):
        match = _TEMP_NAME.match(path.name)
        if match and not _running(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
