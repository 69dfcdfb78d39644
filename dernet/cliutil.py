"""What every command line of the project shares: a user's mistake is one line on stderr and its exit code (2); a
missing optional extra says which one to install; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import UserError, missing_extra

__all__ = [
    "SPLITS",
    "add_conf",
    "add_data",
    "add_ensemble",
    "add_models",
    "add_out",
    "add_split",
    "add_threshold",
    "add_variant",
    "probability",
    "run_command",
    "run_main",
]


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


def run_main(module: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Import ``module`` and call its ``main(argv)`` (``main(argv, prog)`` when spine-cad names it): the `python -m`
    entry points and spine-cad's subcommands go through here, so that a command whose optional extra is not
    installed says which one in one line (exit 2) instead of an ImportError."""
    try:
        main = importlib.import_module(module).main
    except ModuleNotFoundError as err:
        extra = missing_extra(err)
        if extra is None:
            raise
        return _error(extra, extra.exit_code)
    return main(argv) if prog is None else main(argv, prog)


def _error(err: BaseException, code: int) -> int:
    print(f"error: {err}", file=sys.stderr)
    return code


# The shared vocabulary of every command line (spine-cad's subcommands and their `python -m` aliases): one flag name
# per meaning, each parsed and checked the same way wherever it appears.
SPLITS = ("train", "val", "test")


def probability(text: str) -> float:
    """argparse type of --threshold and --conf: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def add_data(parser: argparse.ArgumentParser, default: str = "data/prepared") -> None:
    parser.add_argument(
        "--data", type=Path, default=Path(default), help=f"the prepared dataset folder (default: {default})"
    )


def add_models(parser: argparse.ArgumentParser, written: bool = False) -> None:
    what = "where the exported models and manifest.json are written" if written else "the exported models folder"
    parser.add_argument("--models", type=Path, default=Path("export"), help=f"{what} (default: export)")


def add_out(parser: argparse.ArgumentParser, default: str, what: str = "outputs") -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help=f"{what} (default: {default})")


def add_split(parser: argparse.ArgumentParser, default: str = "test") -> None:
    parser.add_argument("--split", default=default, choices=SPLITS, help=f"prepared split (default: {default})")


def add_conf(parser: argparse.ArgumentParser, default: float | None, what: str = "") -> None:
    shown = "the manifest's" if default is None else default
    parser.add_argument(
        "--conf", type=probability, default=default, help=f"minimum box confidence, 0..1 (default: {shown}){what}"
    )


def add_threshold(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold", type=probability, help="abnormality threshold, 0..1 (default: the manifest's, from validation)"
    )


def add_variant(parser: argparse.ArgumentParser) -> None:
    from .deploy.variants import VARIANTS  # layer 1, like this module; imported here to keep cliutil light

    parser.add_argument(
        "--variant",
        choices=("auto", *VARIANTS),
        default="auto",
        help="runtime variant of both models (default auto: the fastest the export accepted and this install runs)",
    )


def add_ensemble(parser: argparse.ArgumentParser, required_for: str = "") -> None:
    parser.add_argument(
        "--ensemble",
        type=Path,
        default=Path("runs/ensemble/ensemble.json"),
        help=f"the fitted ensemble: ensemble.json or the folder holding it (default: runs/ensemble/ensemble.json)"
        f"{required_for}",
    )
