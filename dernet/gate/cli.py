"""`python -m dernet.gate PATH... [--models DIR] [--out DIR] [--mode gate|fusion|all] [--threshold P] [--conf C]
[--providers ...] [--threads N] [--json]`: screen radiographs with the exported models (no torch).

Exit codes: 0 every input screened; 1 some inputs rejected (the others were screened); 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..cliutil import run_command
from .report import output_stems, summary_line, write_outputs, write_summary_csv
from .runtime import RuntimeOptions
from .screening import MODES, Screener

__all__ = ["collect_inputs", "main"]


def collect_inputs(paths: list[Path], out_dir: Path | None = None) -> tuple[list[Path], bool]:
    """Files as given, folders searched recursively (hidden files and the output folder skipped); whether any
    folder was given.

    A path that does not exist stays in the list: the reader rejects it with a clear reason, and the others run.
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
    return list(dict.fromkeys(files)), any_folder


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and path.resolve().is_relative_to(folder)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dernet.gate",
        description="Screen spine radiographs: abnormality score, lesion boxes, a report and an overlay per input.",
        epilog="Exit codes: 0 all screened, 1 some inputs rejected (the rest processed), 2 usage error.",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="DICOM (any extension), PNG, JPEG, or folders"
    )
    parser.add_argument("--models", type=Path, default=Path("export"), help="exported models folder (default: export)")
    parser.add_argument("--out", type=Path, default=Path("runs/gate"), help="reports and overlays (default: runs/gate)")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="gate",
        help="gate: detect only when abnormal (DERNet); fusion: always detect, keep boxes >= 0.5 when normal "
        "(VinDr-SpineXR); all: always detect, keep all boxes",
    )
    parser.add_argument("--threshold", type=_probability, help="abnormality threshold (default: the manifest's)")
    parser.add_argument(
        "--conf", type=_probability, help="minimum box confidence (default: the manifest's; 0.001 to evaluate)"
    )
    parser.add_argument(
        "--providers", nargs="+", metavar="P", help="ONNX Runtime providers, e.g. cuda cpu (default: CUDA if present)"
    )
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON report per line instead of a summary line")
    return parser


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        files, any_folder = collect_inputs(args.paths, args.out)
        if not files:
            raise FileNotFoundError(f"{', '.join(map(str, args.paths))}: no files found")
        screener = Screener(args.models, RuntimeOptions(args.providers, args.threads))  # ManifestError: exit 2
        stems = output_stems(files)
        several = any_folder or len(files) > 1
        written = []
        rejected = 0
        progress = tqdm(
            files, desc="screening", unit="image", disable=True if len(files) < 2 else None, file=sys.stderr
        )
        for path in progress:
            result = screener.screen(path, name=str(path), mode=args.mode, threshold=args.threshold, conf=args.conf)
            report, report_path = write_outputs(result, args.out, stems[path], screener.model_hashes)
            rejected += report["status"] != "ok"
            written.append((report, report_path))
            line = json.dumps(report) if args.json else summary_line(report)
            progress.write(line, file=sys.stdout)
            for warning in result.warnings:
                named = warning if warning.startswith(str(path)) else f"{path}: {warning}"
                progress.write(f"warning: {named}", file=sys.stderr)
        if several:
            write_summary_csv(args.out / "summary.csv", written)
        if not args.json:
            extra = f" and {args.out / 'summary.csv'}" if several else ""
            print(f"{len(files) - rejected} screened, {rejected} rejected; reports and overlays in {args.out}/{extra}")
        return 1 if rejected else 0

    return run_command(run, args)
