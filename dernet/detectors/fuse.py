"""`python -m dernet.detectors.fuse --models export --data data/prepared`: choose the gate's box fusion on validation.

For an export holding more than one detector (`export-detector --add`): every validation image through the gate's
own core and each exported graph, then the Weighted Boxes Fusion weights and IoU threshold with the best validation
mAP@0.5 (the grid of :func:`dernet.detectors.compare.choose_fusion`), written as the manifest's ``fusion``. The
gate's --wbf uses it. Never chosen on the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from tqdm import tqdm

from ..cliutil import add_data, add_models, run_command
from ..datasets.labels import read_row_boxes
from ..datasets.tables import read_table, split_rows
from ..deploy.engines import RuntimeOptions
from ..deploy.manifest import FusionSpec, ManifestError, load_manifest, read_manifest_file, write_manifest_file
from ..deploy.screening import Screener
from ..errors import UsageError
from ..imaging import scale_boxes
from ..metrics import DetectionSample
from .compare import choose_fusion

__all__ = ["choose_export_fusion", "main"]

SKIP_BOX_THR = 0.001  # each detector's boxes take part from evaluation's confidence up


def choose_export_fusion(models: str | Path, data_dir: str | Path, split: str = "val") -> FusionSpec:
    """Choose and record the export's fusion on ``split`` (validation)."""
    data_dir, manifest = Path(data_dir), load_manifest(models)
    if not manifest.detectors:
        raise ManifestError(f"{manifest.folder}: one detector only; add another first (export-detector --add)")
    rows = list(split_rows(read_table(data_dir), split).itertuples())
    if not rows:
        raise UsageError(f"{data_dir}: the {split} split is empty")
    # the prepared cache is the gate's input here, smaller than the originals: no minimum size
    rejection = dataclasses.replace(manifest.rejection, min_side=0)
    per_model: list[list[DetectionSample]] = [[] for _ in manifest.all_detectors]
    with Screener(manifest, RuntimeOptions(["cpu"]), rejection, variant="fp32") as screener:
        for row in tqdm(rows, desc=f"detectors on {split}", unit="image"):
            prepared = screener.prepare(data_dir / row.path, mode="all")
            if prepared.result.status != "ok":
                continue
            meta, original = prepared.result.meta, (int(row.width), int(row.height))
            gt, gt_classes = read_row_boxes(data_dir, row)
            for samples, found in zip(per_model, screener.detections_per_model(prepared, SKIP_BOX_THR), strict=True):
                boxes = scale_boxes(found.boxes, (meta.width, meta.height), original)  # cache pixels -> original
                samples.append(DetectionSample(row.image_id, *original, gt, gt_classes, boxes, found.scores,
                                               found.classes))  # fmt: skip
    choice = choose_fusion(per_model)
    spec = FusionSpec(choice.weights, choice.iou_thr, SKIP_BOX_THR,
                      {"split": split, "images": len(per_model[0]), "map50": round(choice.val_map50, 5)})  # fmt: skip
    write_manifest_file(manifest.folder, dataclasses.replace(read_manifest_file(manifest.folder), fusion=spec))
    return spec


def main(argv: list[str] | None = None, prog: str = "python -m dernet.detectors.fuse") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_models(parser, written=True)
    add_data(parser)
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        spec = choose_export_fusion(args.models, args.data)
        names = [d.file for d in load_manifest(args.models).all_detectors]
        print(f"{args.models / 'manifest.json'}: fusion of {', '.join(names)} with weights {list(spec.weights)}, "
              f"IoU {spec.iou_thr} (val mAP@0.5 {100 * spec.chosen_on['map50']:.2f}); screen with --wbf")  # fmt: skip
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    raise SystemExit(main())
