"""Typed run records: the JSON files one stage hands to the next, checked at load, written atomically.

A record is a frozen dataclass with a ``FORMAT_VERSION`` class attribute. :func:`save_record` writes it with its
``format_version``; :func:`load_record` reads it back through pydantic (unknown keys refused, types coerced the JSON
way), so a renamed or mistyped key fails where the file is read, with one line naming the file and the key, instead
of as a KeyError far away. Every stage file (``ensemble.json``, the manifest sections, the prepared data's
preprocessing, a YOLO run's options) goes through here.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .errors import MissingFileError, UserError
from .fileio import write_json_atomic

__all__ = ["RECORD_CONFIG", "RecordError", "load_record", "record_dict", "record_from_dict", "save_record"]

T = TypeVar("T")

# Set as ``__pydantic_config__`` on every record dataclass: an unknown key is an error, not silently dropped.
RECORD_CONFIG = ConfigDict(extra="forbid")


UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")  # pydantic's names for it (models, dataclasses)


class RecordError(UserError, ValueError):
    """A stage file that does not match its record type; the message names the file, the key and the fix."""


@cache
def _adapter(cls: type) -> TypeAdapter:
    return TypeAdapter(cls)


def record_from_dict(cls: type[T], data: Any, where: str, fix: str = "") -> T:
    """``data`` checked as a ``cls``; a mismatch raises :class:`RecordError` naming ``where`` and the keys."""
    if not isinstance(data, dict):
        raise RecordError(f"{where}: expected a JSON object, found {type(data).__name__}{_fix(fix)}")
    try:
        return _adapter(cls).validate_python(data)
    except ValidationError as err:
        raise RecordError(f"{where}: {describe_errors(cls, err)}{_fix(fix)}") from None


def record_dict(record: Any) -> dict[str, Any]:
    """The record as plain JSON values (tuples become lists, paths strings)."""
    return _adapter(type(record)).dump_python(record, mode="json")


def save_record(record: Any, path: str | os.PathLike) -> Path:
    """Write ``record`` with its format version to ``path`` atomically."""
    path = Path(path)
    write_json_atomic(path, {"format_version": type(record).FORMAT_VERSION, **record_dict(record)})
    return path


def load_record(cls: type[T], path: str | os.PathLike, fix: str) -> T:
    """Read a record written by :func:`save_record`; a missing, unreadable, old or mismatched file raises a
    :class:`~dernet.errors.UserError` that names ``path`` and ends with ``fix`` (what to run)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: not found{_fix(fix)}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path}: not readable JSON ({err}){_fix(fix)}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: expected a JSON object{_fix(fix)}")
    version = data.pop("format_version", None)
    if version != cls.FORMAT_VERSION:  # type: ignore[attr-defined]
        raise RecordError(
            f"{path}: format_version {version} is not {cls.FORMAT_VERSION}"  # type: ignore[attr-defined]
            f" (written by another version of spine-cad){_fix(fix)}"
        )
    return record_from_dict(cls, data, str(path), fix)


def describe_errors(cls: type, err: ValidationError, limit: int = 3) -> str:
    """pydantic's errors as short phrases naming the key (``members.1.threshold``), nearest valid key for typos."""
    phrases = []
    errors = sorted(err.errors(), key=lambda e: e["type"] not in UNKNOWN_KEY)  # a renamed key: its new name first
    for error in errors[:limit]:
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            phrases.append(f"key '{key}' is missing")
        elif error["type"] in UNKNOWN_KEY:
            phrases.append(f"unknown key '{key}'{_nearest(cls, error['loc'])}")
        elif not key or error["type"] == "value_error":  # a record's own check (__post_init__)
            phrases.append(error["msg"].removeprefix("Value error, "))
        else:
            phrases.append(f"key '{key}': {error['msg'].lower()} (found {error.get('input')!r:.40})")
    more = len(err.errors()) - limit
    return "; ".join(phrases) + (f"; and {more} more" if more > 0 else "")


def _nearest(cls: type, loc: tuple[Any, ...]) -> str:
    """' (did you mean 'x'?)' for an unknown key, looked up in the record type that holds it."""
    holder: Any = cls
    for part in loc[:-1]:  # walk down nested records (str parts) and list items (int parts)
        if isinstance(part, int):
            args = [a for a in typing.get_args(holder) if a is not Ellipsis]
            holder = args[0] if args else None
        elif dataclasses.is_dataclass(holder):
            holder = typing.get_type_hints(holder).get(part)
        else:
            return ""
        if typing.get_origin(holder) in (typing.Union, types.UnionType):  # an optional section: its record type
            holder = next((a for a in typing.get_args(holder) if dataclasses.is_dataclass(a)), None)
    if not dataclasses.is_dataclass(holder):
        return ""
    close = difflib.get_close_matches(str(loc[-1]), [f.name for f in dataclasses.fields(holder)], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fix(fix: str) -> str:
    return f"; {fix}" if fix else ""
