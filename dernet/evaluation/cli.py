"""`python -m dernet.evaluation [--models export] [--data data/prepared] [--split test]` (`make evaluate`), or
`--reports DIR --annotations CSV...` to score gate reports made with `--mode all --conf 0.001`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cliutil import add_data, add_models, add_out, add_split, add_variant, run_command
from ..imaging import set_decoder_threads
from .exported import evaluate_exported, format_result, score_reports

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "python -m dernet.evaluation") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Classification with 95% CIs and AP@0.5 per class for each gate mode, from the exported models.",
    )
    add_models(parser)
    add_data(parser)
    add_split(parser)
    add_out(parser, "runs/evaluation", "tables, JSON and plots")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    add_variant(parser)
    parser.add_argument("--reports", type=Path, help="score these gate reports instead (with --annotations)")
    parser.add_argument("--annotations", type=Path, nargs="+", help="release annotation CSV(s) for --reports")
    args = parser.parse_args(argv)
    if args.reports and not args.annotations:
        parser.error("--reports needs --annotations (the release's annotations/<split>.csv)")

    def run(args: argparse.Namespace) -> int:
        set_decoder_threads()
        if args.reports:
            result = score_reports(args.reports, args.annotations, args.bootstrap)
            where = args.reports / "evaluation"
        else:
            result = evaluate_exported(
                args.models, args.data, args.split, args.out, args.bootstrap, variant=args.variant
            )
            where = args.out
        print(format_result(result))
        print(f"\nwritten: {where}/evaluation_*.md, .json, roc_*.png, pr_*.png, confusion_*.png")
        return 0

    return run_command(run, args)
