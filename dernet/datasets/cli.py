"""Command line for the datasets package: `synth` (a phantom in the release layout, or folder-per-class), `prepare`
(either layout) and `samples`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..cliutil import run_command
from ..config import from_mapping, load_clahe_params, load_yaml
from ..errors import MissingFileError, UsageError
from ..imaging import set_decoder_threads
from .imagefolder import GHAURI_CLASSES, LAYOUT, format_imagefolder_summary, prepare_imagefolder, synthesize_imagefolder
from .prepare import PrepareConfig, prepare_dataset
from .summary import format_summary
from .synth import synthesize

__all__ = ["main"]

DEFAULT_CONFIG = Path("configs/data.yaml")


def main(argv: list[str] | None = None, prog: str = "python -m dernet.datasets") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    return run_command(args.run, args)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a phantom dataset (VinDr-SpineXR release or folder per class)")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    add_layout(synth)
    synth.add_argument(
        "--classes",
        default=",".join(GHAURI_CLASSES),
        help="imagefolder: comma-separated class names, one folder each (default: Ghauri et al.'s four)",
    )
    synth.add_argument("--images", type=int, default=40, help="number of images, in all (default 40)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same files")
    synth.add_argument(
        "--long-side", type=int, help="image long side in px (default 640; imagefolder: 300, as Ghauri et al.'s)"
    )
    synth.add_argument(
        "--release-like",
        action="store_true",
        help="encode every image like the real release (JPEG 2000 Lossless, 12-bit, MONOCHROME2)",
    )
    synth.add_argument(
        "--views",
        type=int,
        help="release layout: exactly this many images per study (default: one or two); an abnormal study's "
        "lesions show in one view or in all",
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(run=_synth)

    prepare = commands.add_parser("prepare", help="prepare the release (or a phantom) for training")
    prepare.add_argument(
        "--source",
        type=Path,
        required=True,
        help="release folder (annotations/, *_images/), or with --layout imagefolder one subfolder per class",
    )
    add_layout(prepare)
    prepare.add_argument(
        "--classes", help="imagefolder: comma-separated class order (default: the folder names, sorted)"
    )
    prepare.add_argument("--out", type=Path, required=True, help="output folder (e.g. data/prepared)")
    prepare.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML with a 'prepare' section (default {DEFAULT_CONFIG} when it exists)",
    )
    prepare.add_argument("--long-side", type=int, help="cache long side in px (overrides the config)")
    prepare.add_argument("--workers", type=int, help="parallel worker processes (overrides the config)")
    prepare.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    prepare.set_defaults(run=_prepare)

    samples = commands.add_parser("samples", help="copy a few test images (normal and abnormal, one also as PNG)")
    samples.add_argument("--source", type=Path, required=True, help="release folder (or phantom)")
    samples.add_argument("--out", type=Path, required=True, help="output folder")
    samples.add_argument("--count", type=int, default=6, help="DICOM files to copy, half abnormal (default 6)")
    samples.set_defaults(run=_samples)
    return parser


def add_layout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout",
        choices=("vindr", LAYOUT),
        default="vindr",
        help="vindr: the VinDr-SpineXR release (default); imagefolder: root/<class name>/<images> (PNG, JPEG, DICOM)",
    )


def _class_list(text: str | None) -> list[str] | None:
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _samples(args: argparse.Namespace) -> int:
    from .samples import pick_samples

    written = pick_samples(args.source, args.out, args.count)
    print(f"{len(written)} sample inputs in {args.out}/abnormal and {args.out}/normal (by ground truth)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    long_side = args.long_side or (300 if args.layout == LAYOUT else 640)
    if args.images < 1 or long_side < 64:
        raise UsageError("--images must be at least 1 and --long-side at least 64")
    if args.views is not None and (args.views < 1 or args.layout == LAYOUT):
        raise UsageError("--views is for the release layout and must be at least 1")
    if args.layout == LAYOUT:
        classes = _class_list(args.classes)
        per_class = -(-args.images // max(len(classes), 1))
        counts = synthesize_imagefolder(args.out, classes, per_class, args.seed, long_side, not args.quiet)
        print(f"phantom written to {args.out} ({', '.join(f'{k}: {v}' for k, v in counts.items())} images)")
        return 0
    summary = synthesize(
        args.out,
        images=args.images,
        seed=args.seed,
        long_side=long_side,
        release_like=args.release_like,
        progress=not args.quiet,
        views=args.views,
    )
    counts = ", ".join(f"{s}: {v['images']} images ({v['abnormal']} abnormal)" for s, v in summary["splits"].items())
    print(f"phantom written to {args.out} ({counts})")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    config = load_prepare_config(args.config)
    overrides = {k: v for k, v in (("long_side", args.long_side), ("workers", args.workers)) if v is not None}
    config = replace(config, **overrides)
    if not args.source.is_dir():
        what = "one subfolder of images per class" if args.layout == LAYOUT else "the VinDr-SpineXR release folder"
        raise MissingFileError(f"{args.source}: no such folder; give {what}")
    set_decoder_threads()  # one worker decodes on every core; worker processes take one thread each (cache.py)
    clahe = load_clahe_params(args.config or DEFAULT_CONFIG) if (args.config or DEFAULT_CONFIG.is_file()) else None
    if args.layout == LAYOUT:
        classes = _class_list(args.classes)
        result = prepare_imagefolder(args.source, args.out, config, not args.quiet, clahe, classes)
    else:
        result = prepare_dataset(args.source, args.out, config, not args.quiet, clahe)
    for skipped in result.skipped:
        print(f"skipped {skipped.error}", file=sys.stderr)
    if not args.quiet:
        print(format_imagefolder_summary(result.summary) if args.layout == LAYOUT else format_summary(result.summary))
    print(f"prepared data in {result.out_dir} ({len(result.skipped)} skipped)")
    return 1 if result.skipped else 0


def load_prepare_config(path: Path | None) -> PrepareConfig:
    """The 'prepare' section of ``path`` (or of configs/data.yaml when present), else the defaults."""
    if path is None and not DEFAULT_CONFIG.is_file():
        return PrepareConfig()
    path = path or DEFAULT_CONFIG
    return from_mapping(PrepareConfig, load_yaml(path).get("prepare"), f"{path}: prepare")
