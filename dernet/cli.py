"""`spine-cad SUBCOMMAND ...`: one command line over the whole workflow.

Each subcommand runs the parser of its `python -m` alias (the same flags, the same checks): spine-cad only names
them. Modules are imported when their subcommand runs, so `spine-cad --help` is instant and works on a screening-only
install, and a subcommand whose extra is missing says which one to install.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .cliutil import run_main

__all__ = ["SUBCOMMANDS", "Subcommand", "main"]


@dataclass(frozen=True)
class Subcommand:
    name: str
    summary: str  # one line for `spine-cad --help`
    module: str  # whose main() parses the rest; also `python -m <alias>`
    alias: str  # the `python -m` form, as documented
    prefix: tuple[str, ...] = ()  # the module's own subcommand, for modules that hold several

    @property
    def prog(self) -> str:
        """The name its usage line shows: a module with subcommands adds the subcommand's name itself."""
        return "spine-cad" if self.prefix else f"spine-cad {self.name}"


SUBCOMMANDS = (
    Subcommand("synth", "write a phantom dataset in the VinDr-SpineXR release layout", "dernet.datasets.cli",
               "python -m dernet.datasets synth", ("synth",)),
    Subcommand("prepare", "release -> windowed PNG cache, YOLO labels, classification table, preprocessing.json",
               "dernet.datasets.cli", "python -m dernet.datasets prepare", ("prepare",)),
    Subcommand("samples", "copy a few test DICOMs (normal and abnormal) to try the gate on", "dernet.datasets.cli",
               "python -m dernet.datasets samples", ("samples",)),
    Subcommand("train-member", "train one ensemble member (LightningCLI fit: --config configs/ensemble/<member>.yaml)",
               "dernet.ensemble.cli", "python -m dernet fit", ("fit",)),
    Subcommand("cv", "K-fold cross-validation of one member over the prepared folds", "dernet.ensemble.cli",
               "python -m dernet cv", ("cv",)),
    Subcommand("tune", "Optuna search of one member's hyperparameters (validation AUROC; resumable; best YAML)",
               "dernet.ensemble.cli", "python -m dernet tune", ("tune",)),
    Subcommand("study-fit", "study-level decision (LightGBM over a study's screened images), fitted on validation",
               "dernet.study.cli", "python -m dernet study-fit"),
    Subcommand("train-ensemble", "train every member, then fit voting weights and the threshold on validation",
               "dernet.ensemble.cli", "python -m dernet train-ensemble", ("train-ensemble",)),
    Subcommand("fit-ensemble", "choose voting weights and the threshold on validation -> ensemble.json",
               "dernet.ensemble.cli", "python -m dernet fit-ensemble", ("fit-ensemble",)),
    Subcommand("evaluate-ensemble", "members + ensemble metrics with 95% CIs and ROC from the PyTorch checkpoints",
               "dernet.ensemble.cli", "python -m dernet evaluate-ensemble", ("evaluate-ensemble",)),
    Subcommand("train-yolo", "train the lesion detector (Ultralytics) from configs/yolo_spine.yaml",
               "yolo_spine.train", "python -m yolo_spine.train"),
    Subcommand("evaluate-yolo", "detector AP@0.5 per class and mAP from the PyTorch weights", "yolo_spine.evaluate",
               "python -m yolo_spine.evaluate"),
    Subcommand("train-detector", "train a Faster R-CNN or RetinaNet (LightningCLI fit: --config configs/detectors/...)",
               "dernet.detectors.cli", "python -m dernet.detectors fit", ("fit",)),
    Subcommand("evaluate-detector", "a torchvision detector's AP@0.5 per class and mAP from its checkpoint",
               "dernet.detectors.evaluate", "python -m dernet.detectors.evaluate"),
    Subcommand("export-detector", "a torchvision detector to verified ONNX, as the manifest's detector",
               "dernet.detectors.export", "python -m dernet.detectors.export"),
    Subcommand("compare-detectors", "YOLO11, Faster R-CNN, RetinaNet and their box fusion in one table (Table 4's)",
               "dernet.detectors.compare", "python -m dernet.detectors.compare"),
    Subcommand("fuse-detectors", "choose the gate's box fusion (--wbf) of the exported detectors on validation",
               "dernet.detectors.fuse", "python -m dernet.detectors.fuse"),
    Subcommand("export", "both models to verified ONNX + manifest.json (--quantize for faster variants)",
               "dernet.export.__main__", "python -m dernet.export"),
    Subcommand("quantize", "add runtime variants (int8, OpenVINO) to an export, timed and accuracy-checked",
               "dernet.export.quantize", "python -m dernet.export.quantize"),
    Subcommand("evaluate", "classification + per-class AP for each gate mode, from the exported models",
               "dernet.evaluation.cli", "python -m dernet.evaluation"),
    Subcommand("gate", "screen radiographs: score, boxes, report and overlay per input (no torch)",
               "dernet.gate.cli", "python -m dernet.gate"),
    Subcommand("explain", "Grad-CAM heatmaps per member and for the ensemble", "dernet.explain.cli",
               "python -m dernet.explain"),
    Subcommand("serve", "the gate as a web page and JSON API", "dernet.web.__main__", "python -m dernet.web"),
    Subcommand("node", "a DICOM node: receive from a PACS, screen, send SR/SC/PR back (`node retry` resends)",
               "dernet.node.cli", "python -m dernet.node"),
    Subcommand("batch", "screen an archive on Ray Data into Parquet rows, resumable, laptop to cluster",
               "dernet.batch.cli", "python -m dernet.batch"),
    Subcommand("bench", "speed beside the naive path (from a checkout, after make demo)", "benchmarks.run",
               "python -m benchmarks"),
)  # fmt: skip


def usage() -> str:
    width = max(len(s.name) for s in SUBCOMMANDS)
    lines = [
        "usage: spine-cad SUBCOMMAND [ARGS...]   (spine-cad SUBCOMMAND --help for its flags)",
        "",
        "Spine radiograph screening: prepare data, train the DERNet ensemble and the YOLO detector, export them,",
        "and screen with the exported models. Shared flags: --data (prepared folder), --models (export folder),",
        "--out (outputs), --split, --conf, --threshold, --variant.",
        "",
        "subcommands:",
        *(f"  {s.name:<{width}}  {s.summary}" for s in SUBCOMMANDS),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    by_name = {s.name: s for s in SUBCOMMANDS}
    command = by_name.get(argv[0])
    if command is None:
        print(f"error: unknown subcommand '{argv[0]}'; `spine-cad --help` lists them", file=sys.stderr)
        return 2
    return run_main(command.module, [*command.prefix, *argv[1:]], command.prog)


if __name__ == "__main__":
    raise SystemExit(main())
