"""Input files of the command lines (files as given, folders searched) and unique output names for them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import MissingFileError

__all__ = ["collect_inputs", "display_name", "output_stems"]


def collect_inputs(paths: list[Path], out_dir: Path | None = None) -> tuple[list[Path], bool]:
    """Files as given, folders searched recursively (hidden entries and the output folder skipped; symlinked folders
    not followed); whether any folder was given.

    Whatever is not a folder is an input, so that each gets a report: a path that does not exist, a broken or
    looping symlink, a pipe. The reader rejects those with a reason, and the others run. Raises
    :class:`MissingFileError` when nothing at all is found (empty folders only).
    """
    files: list[Path] = []
    any_folder = False
    skip = _absolute(out_dir) if out_dir is not None else None
    for path in paths:
        if path.is_dir():
            any_folder = True
            found = sorted(
                p
                for p in path.rglob("*")
                if not p.is_dir() and not _hidden(p.relative_to(path)) and not _inside(p, skip)
            )
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise MissingFileError(f"{', '.join(map(str, paths))}: no files found")
    return list(dict.fromkeys(files)), any_folder


def output_stems(inputs: Sequence[Path]) -> dict[Path, Path]:
    """A unique relative name per input: its path relative to the inputs' common folder (mirrored under --out).
    Paths are made absolute without following symlinks, so a looping one still gets its name."""
    absolute = [_absolute(p) for p in inputs]
    parents = [str(p.parent) for p in absolute]
    root = Path(os.path.commonpath(parents)) if parents else Path(".")
    return {given: path.relative_to(root) for given, path in zip(inputs, absolute, strict=True)}


def display_name(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and encoded: bytes that are not UTF-8 (kept by Python as
    surrogates) are shown as backslash escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and _absolute(path).is_relative_to(folder)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
