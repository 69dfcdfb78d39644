"""`python -m dernet.explain PATH... [--ensemble FILE] [--out DIR] [--method gradcam|gradcam++|eigencam]`:
Grad-CAM heatmaps of each ensemble member and of the weighted ensemble, from the PyTorch checkpoints.

Exit codes: 0 every input explained; 1 some inputs could not be read (the others were explained); 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..cliutil import add_ensemble, add_out, run_command
from ..deploy.report import blend_heatmap
from ..fileio import write_figure_atomic, write_png_atomic
from ..imaging import ImageReadError, apply_clahe, set_decoder_threads
from ..inputs import collect_inputs, output_stems
from .cam import METHODS
from .explainer import Explainer, Explanation
from .render import render_panel

__all__ = ["main", "write_explanation"]


def write_explanation(explanation: Explanation, windowed, target: Path, title: str) -> tuple[Path, Path]:
    """``<target>.explain.png`` (the panel) and ``<target>.heatmap.png`` (the ensemble heatmap over the windowed,
    CLAHE-enhanced image at the original's geometry); their paths."""
    panel = target.with_name(target.name + ".explain.png")
    heatmap = target.with_name(target.name + ".heatmap.png")
    write_figure_atomic(render_panel(explanation, title), panel)
    grey = apply_clahe(windowed)
    on_image = explanation.on_image(explanation.heatmap, (grey.shape[1], grey.shape[0]))
    write_png_atomic(heatmap, blend_heatmap(grey, on_image), compression=3)
    return panel, heatmap


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Where the DERNet ensemble looked: a heatmap per member and their weighted combination.",
        epilog="Exit codes: 0 all explained, 1 some inputs unreadable (the rest processed), 2 usage error.",
    )
    parser.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="DICOM (any extension), PNG, JPEG, or folders"
    )
    add_ensemble(parser)
    add_out(parser, "runs/explain", "heatmap panels and overlays")
    parser.add_argument("--method", choices=tuple(METHODS), default="gradcam", help="CAM method (default: gradcam)")
    parser.add_argument(
        "--long-side", type=int, help="long side of the prepared cache the members trained on (default: its summary)"
    )
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m dernet.explain") -> int:
    args = _parser(prog).parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        set_decoder_threads()
        files, _ = collect_inputs(args.paths, args.out)
        explainer = Explainer(args.ensemble, args.method, args.long_side)
        stems = output_stems(files)
        failed = 0
        progress = tqdm(files, desc="explaining", unit="image", disable=True if len(files) < 2 else None)
        for path in progress:
            try:
                windowed, _ = explainer.read(path)
            except ImageReadError as err:
                failed += 1
                progress.write(f"error: {err}", file=sys.stderr)
                continue
            explanation = explainer.explain_windowed(windowed)
            panel, _ = write_explanation(explanation, windowed, args.out / stems[path], str(stems[path]))
            members = ", ".join(f"{n} {p:.3f}" for n, p in explanation.member_probabilities.items())
            decision = "ABNORMAL" if explanation.abnormal else "normal"
            progress.write(
                f"{path}: {decision} p={explanation.probability:.3f} ({members}) -> {panel}", file=sys.stdout
            )
        print(f"{len(files) - failed} explained, {failed} unreadable; heatmaps in {args.out}/")
        return 1 if failed else 0

    return run_command(run, args)
