"""What every command line of the project shares: a user's mistake is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .config import ConfigError

__all__ = ["USER_ERRORS", "run_command"]

# Raised for wrong paths, configs and values; the message names the file or key and what to do.
USER_ERRORS = (ConfigError, FileNotFoundError, ValueError)


def run_command(
    run: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    failures: tuple[type[Exception], ...] = (),
) -> int:
    """Run a subcommand; a user error prints `error: <message>` and returns 2 instead of a traceback, and so do the
    command's own expected ``failures`` (a failed export check, say), with exit code 1."""
    try:
        return run(args)
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except failures as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
