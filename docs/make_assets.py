"""The documentation's pictures, made from this project's own outputs on the phantom: `make docs-assets`.

Run it after `make demo` (overlay, Grad-CAM panel, ROC, PR and confusion plots, the structured report as dcmtk's
dsrdump renders it), `make test` (the browser test's screenshot of the web page) and, for the optional ones,
`python -m dernet study-fit` (the study-level ROC) and `make demo-detectors` (the detector comparison). Each
picture is shrunk and reduced to a palette so that all of them together stay small enough to commit (docs/assets/,
a few hundred KB).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from dernet.fileio import write_bytes_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "docs" / "assets"
COLORS = 96  # palette size: plots and overlays stay legible, a PNG shrinks 3-5x


@dataclass(frozen=True)
class Picture:
    """One documentation picture: where it comes from (a glob under the project), how wide, what makes it."""

    name: str
    source: str
    width: int
    made_by: str
    required: bool = True


PICTURES = (
    Picture("overlay.png", "runs/gate/abnormal/*.dicom.overlay.png", 420, "make demo"),
    Picture("gradcam.png", "runs/explain/*.dicom.explain.png", 900, "make demo"),
    Picture("roc.png", "runs/evaluation/roc_test.png", 440, "make demo"),
    Picture("pr.png", "runs/evaluation/pr_test.png", 440, "make demo"),
    Picture("confusion.png", "runs/evaluation/confusion_test.png", 340, "make demo"),
    Picture("web_page.png", "runs/test-artifacts/web_page.png", 900, "make test (the browser test)"),
    Picture("study_roc.png", "runs/study/study_roc_test.png", 440, "python -m dernet study-fit", required=False),
)


def shrink(source: Path | io.BytesIO, target: Path, width: int) -> int:
    """``source`` scaled to ``width`` (never up), on white, as a palette PNG written atomically; its size in bytes."""
    image = Image.open(source)
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, "white")
        image = Image.alpha_composite(background, image)
    image = image.convert("RGB")
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    palette = image.quantize(colors=COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    encoded = io.BytesIO()
    palette.save(encoded, format="PNG", optimize=True)
    write_bytes_atomic(target, encoded.getvalue())
    return len(encoded.getvalue())


def first_match(pattern: str) -> Path | None:
    """The first match of ``pattern`` under the project in name order (the demo's sample inputs sort the same way)."""
    matches = sorted(ROOT.glob(pattern))
    return matches[0] if matches else None


def comparison_plot(target: Path) -> int | None:
    """mAP@0.5 per class of each detector in runs/compare/comparison_test.json as a bar chart (make demo-detectors)."""
    path = ROOT / "runs" / "compare" / "comparison_test.json"
    if not path.is_file():
        return None
    from matplotlib.figure import Figure

    from dernet.classes import CLASS_NAMES, PAPER_ORDER

    result = json.loads(path.read_text())
    classes = [CLASS_NAMES[k] for k in PAPER_ORDER]  # the papers' column order, as the comparison table
    fig = Figure(figsize=(7.5, 3.6), dpi=100)
    ax = fig.subplots()
    step = 0.8 / len(result["ap50"])
    for i, (name, per_class) in enumerate(result["ap50"].items()):
        values = [100 * (per_class[c] or 0.0) for c in classes]
        label = f"{name} ({100 * result['map50'][name]:.1f})"
        ax.bar([k + i * step for k in range(len(classes))], values, step, label=label)
    ax.set_xticks([k + 0.4 - step / 2 for k in range(len(classes))], classes, rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="AP@0.5 (%)", title="Detectors on the phantom test split (mAP@0.5 in the legend)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    rendered = io.BytesIO()
    fig.savefig(rendered, format="png")
    return shrink(rendered, target, 750)


def sr_rendering(target: Path) -> int | None:
    """dcmtk's dsrdump of the demo's first structured report (a phantom's, so its patient is made up), as text."""
    source = first_match("runs/gate/abnormal/*.dicom.sr.dcm")
    if source is None or shutil.which("dsrdump") is None:
        return None
    text = subprocess.run(["dsrdump", str(source)], capture_output=True, text=True, check=True).stdout
    write_text_atomic(target, text)
    return len(text.encode())


# Made from something other than one picture, each optional: file name, how it is made, what it needs when absent.
OPTIONAL: tuple[tuple[str, Callable[[Path], int | None], str], ...] = (
    ("detectors.png", comparison_plot, "runs/compare/comparison_test.json (run make demo-detectors)"),
    ("sr_dump.txt", sr_rendering, "runs/gate/abnormal/*.sr.dcm (make demo) and dsrdump (dcmtk)"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/make_assets.py", description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    ASSETS.mkdir(parents=True, exist_ok=True)
    missing, total = [], 0
    for picture in PICTURES:
        source = first_match(picture.source)
        if source is None:
            needed = f"{picture.source} (run {picture.made_by})"
            if picture.required:
                missing.append(needed)
            print(f"skipped {picture.name}: no {needed}", file=sys.stderr)
            continue
        size = shrink(source, ASSETS / picture.name, picture.width)
        total += size
        print(f"docs/assets/{picture.name}: {size // 1024} KB from {source.relative_to(ROOT)}")
    for name, make, needs in OPTIONAL:
        size = make(ASSETS / name)
        if size is None:
            print(f"skipped {name}: it needs {needs}", file=sys.stderr)
            continue
        total += size
        print(f"docs/assets/{name}: {size // 1024} KB")
    print(f"{total // 1024} KB in docs/assets/")
    if missing:
        print(f"error: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
