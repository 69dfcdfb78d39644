"""`python -m dernet study-fit --models export --data data/prepared [--split test]`: fit the study-level decision on
validation studies, install it in the export, and score it beside the simple rules (spine-cad study-fit)."""

from __future__ import annotations

import argparse

from ..cliutil import add_data, add_models, add_out, add_split, run_command
from ..errors import UsageError, require_extra

__all__ = ["main"]


def main(argv: list[str] | None = None, prog: str = "python -m dernet study-fit") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_models(parser, written=True)
    add_data(parser)
    add_split(parser)
    add_out(parser, "runs/study", "tables and the ROC plot")
    parser.add_argument("--no-boxes", action="store_true", help="classifier features only (no detector box scores)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs")
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("study")
        if args.bootstrap < 1:
            raise UsageError(f"--bootstrap {args.bootstrap}: give at least 1")
        from .fit import fit_study

        result = fit_study(args.models, args.data, args.split, args.out, not args.no_boxes, args.bootstrap)
        rows = ", ".join(f"{name} {100 * e['metrics']['auroc']:.2f}" for name, e in result["models"].items())
        image = result["image_level"]["models"]["image-level ensemble"]["metrics"]["auroc"]
        print(f"study AUROC on {args.split} ({result['images']} studies): {rows}; image level {100 * image:.2f}")
        print(f"written: {result['study_model']} (manifest: study), {args.out}/study_{args.split}.{{md,json}}, "
              f"study_roc_{args.split}.png")  # fmt: skip
        return 0

    return run_command(run, args)
