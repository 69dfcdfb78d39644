"""`python -m dernet.export` (`spine-cad export`): both models to verified ONNX and export/manifest.json.

[--ensemble runs/ensemble/ensemble.json] [--weights runs/yolo_spine/train/weights/best.pt] [--data data/prepared]
[--models export] [--only classifier|detector] [--quantize VARIANT...]. Each model is checked against PyTorch before
it replaces an earlier export; `python -m yolo_spine.export` exports the detector alone with the same flags.
"""

from __future__ import annotations

import argparse

# the detector's half of the command (torch-free at import: the training stack loads inside run_detector_export)
from yolo_spine.export import add_detector_arguments, run_detector_export

from ..cliutil import add_data, add_ensemble, add_models, run_command
from ..errors import require_extra
from .verify import ExportVerificationError

ROLES = ("classifier", "detector")


def main(argv: list[str] | None = None, prog: str = "python -m dernet.export") -> int:
    from ..deploy.variants import VARIANTS

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export the DERNet ensemble (members + weighted vote) and the detector as verified ONNX graphs.",
    )
    add_ensemble(parser)
    add_data(parser)
    add_models(parser, written=True)
    parser.add_argument("--only", choices=ROLES, help="export one model (default: both)")
    parser.add_argument(
        "--quantize",
        nargs="+",
        default=[],
        choices=[v for v in VARIANTS if v != "fp32"],
        metavar="VARIANT",
        help=f"then add runtime variants, timed and accuracy-checked ({', '.join(v for v in VARIANTS if v != 'fp32')})",
    )
    add_detector_arguments(parser)
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        from .classifier import export_classifier
        from .quantize import add_variants, format_variants

        if args.only in (None, "classifier"):
            spec = export_classifier(args.ensemble, args.data, args.models)
            print(
                f"{args.models / spec.file}: verified (max |ONNX Runtime - PyTorch| = {spec.verified_max_abs_diff:.1e})"
                f", input {spec.input_size} px, members {', '.join(spec.members)}, sha256 {spec.sha256[:12]}"
            )
        if args.only in (None, "detector"):
            run_detector_export(args)
        if args.quantize:
            print(format_variants(add_variants(args.models, args.data, args.quantize)))
        return 0

    return run_command(run, args, failures=(ExportVerificationError,))


if __name__ == "__main__":
    raise SystemExit(main())
