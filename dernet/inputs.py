"""Input files of the command lines (files as given, folders searched) and unique output names for them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import MissingFileError

__all__ = ["collect_inputs", "output_stems"]


def collect_inputs(paths: list[Path], out_dir: Path | None = None) -> tuple[list[Path], bool]:
    """Files as given, folders searched recursively (hidden files and the output folder skipped); whether any
    folder was given.

    A path that does not exist stays in the list: the reader rejects it with a clear reason, and the others run.
    Raises :class:`MissingFileError` when nothing at all is found (empty folders only).
    """
    files: list[Path] = []
    any_folder = False
    skip = out_dir.resolve() if out_dir is not None else None
    for path in paths:
        if path.is_dir():
            any_folder = True
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)) and not _inside(p, skip)
            )
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise MissingFileError(f"{', '.join(map(str, paths))}: no files found")
    return list(dict.fromkeys(files)), any_folder


def output_stems(inputs: Sequence[Path]) -> dict[Path, Path]:
    """A unique relative name per input: its path relative to the inputs' common folder (mirrored under --out)."""
    resolved = [p.resolve() for p in inputs]
    parents = [str(p.parent) for p in resolved]
    root = Path(os.path.commonpath(parents)) if parents else Path(".")
    return {given: path.relative_to(root) for given, path in zip(inputs, resolved, strict=True)}


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
