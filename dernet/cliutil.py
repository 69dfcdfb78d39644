"""What every command line of the project shares: a user's mistake is one line on stderr and its exit code (2); a
missing optional extra says which one to install; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from .errors import UserError, missing_extra

__all__ = ["run_command", "run_main"]


def run_command(
    run: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    failures: tuple[type[Exception], ...] = (),
) -> int:
    """Run a subcommand; a :class:`UserError` prints ``error: <message>`` and returns its exit code (2) instead of a
    traceback, and so do the command's own expected ``failures`` (a failed export check, say), with exit code 1."""
    try:
        return run(args)
    except UserError as err:
        return _error(err, err.exit_code)
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        return _error(extra, extra.exit_code)
    except failures as err:
        return _error(err, 1)


def run_main(module: str, argv: list[str] | None = None) -> int:
    """Import ``module`` and call its ``main(argv)``: the `python -m` entry points go through here, so that a command
    whose optional extra is not installed says which one in one line (exit 2) instead of an ImportError."""
    try:
        main = importlib.import_module(module).main
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        return _error(extra, extra.exit_code)
    return main(argv)


def _error(err: BaseException, code: int) -> int:
    print(f"error: {err}", file=sys.stderr)
    return code
