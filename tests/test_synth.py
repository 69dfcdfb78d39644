"""The phantom: release layout, determinism, encoding variety, honest lesion boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from dernet.datasets import CLASS_NAMES, phantom_plan, synthesize
from dernet.datasets.phantom import render_phantom, sample_spec
from dernet.datasets.vindr import CSV_COLUMNS

from .conftest import PHANTOM_IMAGES, PHANTOM_LONG_SIDE, PHANTOM_SEED


def test_release_layout_and_csv_columns(phantom_dir: Path) -> None:
    frames = {s: pd.read_csv(phantom_dir / "annotations" / f"{s}.csv", dtype=str) for s in ("train", "test")}
    for split, frame in frames.items():
        assert tuple(frame.columns) == CSV_COLUMNS
        for image_id in frame.image_id.unique():
            assert (phantom_dir / f"{split}_images" / f"{image_id}.dicom").is_file()
        assert set(frame.lesion_type) <= set(CLASS_NAMES) | {"No finding"}
        normal = frame[frame.lesion_type == "No finding"]
        assert normal[["xmin", "ymin", "xmax", "ymax"]].isna().all().all()
    both = pd.concat(frames.values())
    assert both.image_id.nunique() == PHANTOM_IMAGES
    images_per_study = both.groupby("study_id").image_id.nunique()
    assert (images_per_study == 2).any() and (images_per_study == 1).any()
    abnormal = both[both.lesion_type != "No finding"].image_id.nunique()
    assert 0.25 * PHANTOM_IMAGES <= abnormal <= 0.75 * PHANTOM_IMAGES


def test_dicom_tags_match_the_csv_and_encodings_vary(phantom_dir: Path) -> None:
    seen = {"photometric": set(), "bits": set(), "syntax": set(), "window": set(), "rescale": set()}
    frame = pd.read_csv(phantom_dir / "annotations" / "train.csv", dtype=str)
    for row in frame.drop_duplicates("image_id").itertuples():
        ds = pydicom.dcmread(phantom_dir / "train_images" / f"{row.image_id}.dicom", stop_before_pixels=True)
        assert (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID) == (
            row.image_id,
            row.study_id,
            row.series_id,
        )
        seen["photometric"].add(ds.PhotometricInterpretation)
        seen["bits"].add(ds.BitsStored)
        seen["syntax"].add(ds.file_meta.TransferSyntaxUID.name)
        seen["window"].add("WindowCenter" in ds)
        seen["rescale"].add("RescaleSlope" in ds)
    assert seen["photometric"] == {"MONOCHROME1", "MONOCHROME2"}
    assert seen["bits"] == {12, 16}
    assert {"Explicit VR Little Endian", "RLE Lossless"} < seen["syntax"]
    assert any("JPEG 2000" in name for name in seen["syntax"])
    assert seen["window"] == {True, False} and seen["rescale"] == {True, False}


def test_same_seed_same_files(tmp_path: Path, phantom_dir: Path) -> None:
    again = tmp_path / "again"
    synthesize(again, images=PHANTOM_IMAGES, seed=PHANTOM_SEED, long_side=PHANTOM_LONG_SIDE, progress=False)
    for csv in ("train.csv", "test.csv"):
        assert (again / "annotations" / csv).read_text() == (phantom_dir / "annotations" / csv).read_text()
    first = sorted((phantom_dir / "train_images").iterdir())[0]
    a, b = pydicom.dcmread(first), pydicom.dcmread(again / "train_images" / first.name)
    np.testing.assert_array_equal(a.pixel_array, b.pixel_array)
    assert phantom_plan(5, seed=1)[0].image_id != phantom_plan(5, seed=2)[0].image_id


def test_summary_reports_box_sizes_in_the_intended_range(phantom_dir: Path) -> None:
    summary = json.loads((phantom_dir / "summary.json").read_text())
    quantiles = summary["box_long_side_fraction_quantiles"]
    assert 0.04 <= quantiles["0.0"] and quantiles["1.0"] <= 0.28  # a spur or a stenosed foramen .. a slipped body
    assert sum(summary["splits"][s]["images"] for s in ("train", "test")) == PHANTOM_IMAGES


def test_every_class_draws_a_local_change_enclosed_by_its_box() -> None:
    for class_id in range(len(CLASS_NAMES)):
        spec = sample_spec(100 + class_id, 320, [class_id])
        with_lesion, boxes = render_phantom(spec)
        without, no_boxes = render_phantom(spec, with_lesions=False)
        assert no_boxes == [] and [c for c, _ in boxes] == [class_id]
        changed = np.abs(with_lesion - without) > 0
        x1, y1, x2, y2 = (int(v) for v in boxes[0][1])
        inside = np.zeros_like(changed)
        inside[y1:y2, x1:x2] = True
        assert changed.any() and not (changed & ~inside).any()
        # tight: the changed pixels touch every side of the box
        ys, xs = np.nonzero(changed)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
        # visible but not saturated: the lesion changes the image by at least a few percent, never to white
        assert np.abs(with_lesion - without).max() > 0.05 and with_lesion.max() < 1.0


def test_studies_of_two_views_show_an_abnormal_studys_lesions_in_one_view_or_both() -> None:
    plan = phantom_plan(400, seed=5, long_side=128, views=2)
    studies: dict[str, list] = {}
    for item in plan:
        studies.setdefault(item.study_id, []).append(sorted({lesion.class_id for lesion in item.spec.lesions}))
    assert {len(v) for v in studies.values()} == {2}
    normal = [v for v in studies.values() if not any(v)]
    both = [v for v in studies.values() if all(v)]
    one = [v for v in studies.values() if any(v) and not all(v)]
    assert len(normal) + len(both) + len(one) == 200 and min(len(normal), len(both), len(one)) >= 30
    assert all(v[0] == v[1] for v in both)  # the same lesion types in both views
