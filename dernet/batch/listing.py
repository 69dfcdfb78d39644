"""The inputs of a batch job: files and folders as the gate finds them, or lists of paths and URIs in CSV or
Parquet; each with the key that resuming compares and the name its report files get."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import MissingFileError, UsageError
from ..inputs import collect_inputs, display_name, output_stems

__all__ = ["LIST_SUFFIXES", "BatchInput", "is_uri", "list_inputs"]

LIST_SUFFIXES = (".csv", ".parquet")  # an INPUT with one of these is a list of inputs, not an image
PATH_COLUMNS = ("path", "uri", "input")  # the column of a list that holds the inputs (else its first column)


@dataclass(frozen=True)
class BatchInput:
    source: str  # what the reader opens: a local path or an fsspec URI
    name: str  # the report's "input": the path as given or found (as the gate names it), or the URI
    key: str  # a changed file has another key and is screened again on resume
    stem: str  # its report and overlay file names, relative to --out/reports (the gate's mirrored layout)


def is_uri(text: str) -> bool:
    """A URI with a scheme (s3://, gs://, https://...) rather than a local path; file:// counts as local."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme != "file"


def list_inputs(given: list[str], out: Path) -> list[BatchInput]:
    """Every input once, in order: folders searched (the output folder skipped), lists expanded. ``given`` stays
    text until it is known to be a path (a Path would fold a URI's '//'). Raises :class:`MissingFileError` when
    nothing is found and :class:`UsageError` for a list that cannot be read."""
    local: list[Path] = []
    uris: list[str] = []
    for text in given:
        path = Path(text)
        if is_uri(text):
            uris.append(text)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            for entry in _read_list(path):
                if is_uri(entry):
                    uris.append(entry)
                else:
                    local.append(path.parent / entry.removeprefix("file://"))
        else:
            local.append(path)
    found = collect_inputs(local, out)[0] if local else []
    if not found and not uris:
        raise MissingFileError(f"{', '.join(given)}: no inputs found")
    stems = output_stems(found) if found else {}
    inputs = [BatchInput(str(p), display_name(p), _file_key(p), str(stems[p])) for p in found]
    inputs += [BatchInput(uri, uri, uri, _uri_stem(uri)) for uri in dict.fromkeys(uris)]
    return inputs


def _read_list(path: Path) -> list[str]:
    """The entries of a CSV or Parquet list: its 'path' (or 'uri', 'input') column, else its first one."""
    import pyarrow.csv
    import pyarrow.parquet

    try:
        table = pyarrow.parquet.read_table(path) if path.suffix.lower() == ".parquet" else pyarrow.csv.read_csv(path)
    except Exception as err:  # pyarrow's parse errors carry no common base beyond ArrowException / OSError
        raise UsageError(f"{path}: cannot be read as a list of inputs ({str(err).splitlines()[0]})") from None
    names = [n for n in PATH_COLUMNS if n in table.column_names] or table.column_names[:1]
    if not names:
        raise UsageError(f"{path}: an empty list; give one path or URI per row in a 'path' column")
    return [str(v) for v in table.column(names[0]).to_pylist() if v not in (None, "")]


def _file_key(path: Path) -> str:
    """Size and modification time (ns): unchanged files are skipped on resume; a missing file keys as such, so it is
    tried again once it appears."""
    try:
        status = os.stat(path)
    except OSError:
        return "missing"
    return f"{status.st_size}:{status.st_mtime_ns}"


def _uri_stem(uri: str) -> str:
    """The report name of a URI: host and path, as if mirrored (s3://bucket/a/b.dcm -> bucket/a/b.dcm)."""
    rest = uri.split("://", 1)[1]
    return str(PurePosixPath(*[part for part in rest.split("/") if part not in ("", ".", "..")]))
