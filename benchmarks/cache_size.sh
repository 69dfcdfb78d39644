#!/usr/bin/env bash
# Does the cache size change accuracy? The demo's recipe trained twice on one phantom (1024 px originals, so that
# neither cache is upsampled): from a cache at the demo detector's input size (384) and at twice that (768); then
# each pair of models served from the other cache too.
# `bash benchmarks/cache_size.sh [OUT]` (after `make install`; about 40 minutes on 2 cores) writes OUT/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/cache_size}
PY=.venv/bin/python
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 YOLO_CONFIG_DIR=$PWD/.ultralytics NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1

[ -f "$OUT/phantom/summary.json" ] || \
    $PY -m dernet.datasets synth --out "$OUT/phantom" --images 300 --long-side 1024 --seed 0 --quiet
for size in 384 768; do
    run="$OUT/$size"
    [ -f "$run/evaluation/evaluation_test.json" ] && continue
    rm -rf "$run" && mkdir -p "$run/configs"
    $PY -m dernet.datasets prepare --source "$OUT/phantom" --out "$run/prepared" --config configs/demo/data.yaml \
        --long-side "$size" --quiet
    # the demo's configs, pointed at this cache and this run's folders
    for f in configs/demo/ensemble/*.yaml; do
        sed -e "s|data/prepared|$run/prepared|g" -e "s|runs/ensemble|$run/ensemble|g" "$f" > "$run/configs/$(basename "$f")"
    done
    $PY -m dernet train-ensemble --config-dir "$run/configs" --trainer.enable_progress_bar false
    $PY -m yolo_spine.train --config configs/demo/yolo_spine.yaml data="$run/prepared/data.yaml" \
        project="$run/yolo_spine" plots=false
    $PY -m dernet.export --ensemble "$run/ensemble/ensemble.json" --weights "$run/yolo_spine/train/weights/best.pt" \
        --data "$run/prepared" --models "$run/export"
    $PY -m dernet.evaluation --models "$run/export" --data "$run/prepared" --split test --out "$run/evaluation"
done
# The same models served from the other cache: the preprocessing's own effect, without training's run-to-run spread
for pair in "384 768" "768 384"; do
    set -- $pair
    served="$OUT/$1/export_at_$2"
    [ -f "$OUT/$1/evaluation_at_$2/evaluation_test.json" ] && continue
    rm -rf "$served" && cp -r "$OUT/$1/export" "$served"
    $PY - "$served" "$2" <<'PY'
import dataclasses, sys
from dernet.deploy.manifest import read_manifest_file, write_manifest_file
folder, side = sys.argv[1], int(sys.argv[2])
manifest = read_manifest_file(folder)
preprocessing = dataclasses.replace(manifest.preprocessing, cache_long_side=side)
write_manifest_file(folder, dataclasses.replace(manifest, preprocessing=preprocessing))
PY
    $PY -m dernet.evaluation --models "$served" --data "$OUT/$2/prepared" --split test --out "$OUT/$1/evaluation_at_$2"
done
$PY - "$OUT" <<'PY'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
lines = ["| trained from cache | served from cache | ensemble AUROC (test, 95% CI) | mAP@0.5 gate / all (test) |",
         "|---|---|---|---|"]
for trained, served in ((384, 384), (384, 768), (768, 768), (768, 384)):
    folder = "evaluation" if trained == served else f"evaluation_at_{served}"
    result = json.loads((out / str(trained) / folder / "evaluation_test.json").read_text())
    ensemble = result["models"]["ensemble"]
    low, high = ensemble["ci95"]["auroc"]
    maps = " / ".join(f"{100 * result['detection'][mode]['map50']:.2f}" for mode in ("gate", "all"))
    auroc = f"{100 * ensemble['metrics']['auroc']:.2f} ({100 * low:.1f}-{100 * high:.1f})"
    lines.append(f"| {trained} | {served} | {auroc} | {maps} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
