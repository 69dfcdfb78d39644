"""`python -m dernet.export [--ensemble runs/ensemble/ensemble.json] [--data data/prepared] [--out export]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cliutil import run_command
from ..errors import require_extra
from .verify import ExportVerificationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dernet.export",
        description="Export the DERNet ensemble (members + weighted vote) as one verified ONNX graph.",
    )
    parser.add_argument("--ensemble", type=Path, default=Path("runs/ensemble/ensemble.json"))
    parser.add_argument("--data", type=Path, default=Path("data/prepared"), help="the prepared dataset it trained on")
    parser.add_argument("--out", type=Path, default=Path("export"))
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        from .classifier import export_classifier

        section = export_classifier(args.ensemble, args.data, args.out)
        print(
            f"{args.out / section['file']}: verified (max |ONNX Runtime - PyTorch| = "
            f"{section['verified_max_abs_diff']:.1e}), input {section['input_size']} px, "
            f"members {', '.join(section['members'])}, sha256 {section['sha256'][:12]}"
        )
        return 0

    return run_command(run, args, failures=(ExportVerificationError,))


if __name__ == "__main__":
    raise SystemExit(main())
