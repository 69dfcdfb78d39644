"""Is a Grad-CAM map meaningful? On implant phantoms, a briefly trained DenseNet121 must look at the implant.

Pairs of phantoms share their anatomy and differ only by one surgical implant (two pedicle screws), so the one
thing that separates the classes is inside the implant's box. The measure is the heatmap's mass inside the box
divided by the box's share of the image area (1.0: no better than a uniform map).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from dernet.datasets.phantom import render_phantom, sample_spec
from dernet.datasets.preprocessing import DataPreprocessing
from dernet.ensemble.record import ChosenOn, EnsembleRecord, MemberRecord
from dernet.imaging import to_uint8

from .conftest import ROOT

pytestmark = pytest.mark.slow

IMPLANT = 1
LONG_SIDE = 256
PAIRS = {"train": 40, "val": 6, "test": 6}
# Measured: median 1.85, smallest 1.34 of 6 (lr 1e-3); with the demo's lr 3e-4 and warm-up, one thread: median 1.73,
# smallest 1.56. Grad-CAM at 128 px has 4x4 cells: coarse.
MIN_RATIO = 1.5


def _implant_pairs(out: Path) -> dict[str, list[float]]:
    """A prepared-layout dataset of normal/implant pairs; the implant boxes of the test split by image id."""
    rows, boxes, index = [], {}, 0
    for split, count in PAIRS.items():
        for _ in range(count):
            spec = sample_spec(5000 + index, LONG_SIDE, [IMPLANT])
            for abnormal in (1, 0):
                image, drawn = render_phantom(spec, with_lesions=bool(abnormal))
                image_id = f"pair{index:03d}_{abnormal}"
                path = f"images/{split}/{image_id}.png"
                (out / path).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(out / path), to_uint8(image))
                fold = {"train": 1, "val": 0, "test": -1}[split]
                rows.append(dict(image_id=image_id, study_id=f"study{index:03d}", split=split, fold=fold,
                                 abnormal=abnormal, lesion_types="Surgical implant" if abnormal else "", path=path,
                                 width=image.shape[1], height=image.shape[0]))  # fmt: skip
                if abnormal and split == "test":
                    assert [c for c, _ in drawn] == [IMPLANT]
                    boxes[image_id] = drawn[0][1]
            index += 1
    pd.DataFrame(rows).to_csv(out / "classification.csv", index=False)
    DataPreprocessing(cache_long_side=LONG_SIDE).save(out)
    return boxes


def test_gradcam_mass_concentrates_on_the_implant(tmp_path: Path) -> None:
    from dernet.ensemble.cli import main as dernet_main
    from dernet.explain import Explainer
    from dernet.explain.cli import write_explanation

    data = tmp_path / "prepared"
    boxes = _implant_pairs(data)
    overrides = ["--trainer.max_epochs", "12", "--model.image_size", "128", "--data.data_dir", str(data),
                 "--data.num_workers", "0", "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"),
                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
    config = ROOT / "configs/demo/ensemble/densenet121.yaml"
    assert dernet_main(["fit", "--config", str(config), *overrides]) == 0
    # last.ckpt: validation AUROC reaches 1.0 on these 12 images by epoch 1 or 2, and best.ckpt keeps the first
    # epoch that got there, barely trained (the implant then decides some test images, not all: flaky).
    checkpoint = str(tmp_path / "runs/densenet121/checkpoints/last.ckpt")
    EnsembleRecord(
        members=(MemberRecord(name="densenet121", checkpoint=checkpoint, threshold=0.5),), weights=(1.0,),
        combine="probability", threshold=0.5, chosen_on=ChosenOn(split="val", data_dir=str(data)),
        clahe_clip_limit=2.0, clahe_tile_grid=8,
    ).save(tmp_path / "ensemble.json")  # fmt: skip
    explainer = Explainer(tmp_path / "ensemble.json")

    ratios, probabilities = [], []
    for image_id, (x1, y1, x2, y2) in boxes.items():
        windowed, meta = explainer.read(data / "images" / "test" / f"{image_id}.png")
        explanation = explainer.explain_windowed(windowed)
        heatmap = explanation.on_image(explanation.heatmap, (meta.width, meta.height)).astype(np.float64)
        box = heatmap[round(y1) : round(y2), round(x1) : round(x2)]
        share = box.size / heatmap.size
        ratios.append(float(box.sum() / heatmap.sum() / share))
        probabilities.append(explanation.probability)

    artifacts = ROOT / "runs" / "test-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    write_explanation(explanation, windowed, artifacts / "implant_phantom", "implant phantom (slow test)")
    measured = {"ratios": ratios, "median": float(np.median(ratios)), "probabilities": probabilities}
    (artifacts / "gradcam_sanity.json").write_text(json.dumps(measured, indent=2))
    assert min(probabilities) > 0.5, f"the model did not learn the implant: {probabilities}"
    assert np.median(ratios) > MIN_RATIO and min(ratios) > 1.0, measured
