"""`prepare` on a small phantom: outputs, labels, splits, honest boxes, resumability, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from dernet.datasets import CLASS_NAMES, PrepareConfig, phantom_plan, prepare_dataset
from dernet.datasets.cli import main as datasets_main
from dernet.datasets.phantom import render_phantom

from .conftest import CACHE_LONG_SIDE, PHANTOM_IMAGES, PHANTOM_LONG_SIDE, PHANTOM_SEED


def _labels(prepared: Path, split: str, image_id: str) -> np.ndarray:
    text = (prepared / "labels" / split / f"{image_id}.txt").read_text()
    return np.array([[float(v) for v in line.split()] for line in text.splitlines()]).reshape(-1, 5)


def test_outputs_and_formats(prepared_dir: Path) -> None:
    table = pd.read_csv(prepared_dir / "classification.csv", dtype={"image_id": str, "study_id": str})
    assert list(table.columns) == [
        "image_id",
        "study_id",
        "split",
        "fold",
        "abnormal",
        "lesion_types",
        "path",
        "width",
        "height",
    ]
    assert len(table) == PHANTOM_IMAGES and set(table.split) == {"train", "val", "test"}
    assert (table[table.split == "test"].fold == -1).all() and (table[table.split == "val"].fold == 0).all()
    data = yaml.safe_load((prepared_dir / "data.yaml").read_text())
    assert [data["names"][i] for i in range(7)] == list(CLASS_NAMES)
    assert Path(data["path"]) == prepared_dir.resolve()
    for row in table.itertuples():
        image = cv2.imread(str(prepared_dir / row.path), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and max(image.shape) == CACHE_LONG_SIDE
        assert image.std() > 10  # a real image in 8 bits: Ultralytics keeps only the high byte of 16-bit PNGs
        assert max(row.width, row.height) == PHANTOM_LONG_SIDE
        labels = _labels(prepared_dir, row.split, row.image_id)
        assert bool(len(labels)) == bool(row.abnormal)
        if len(labels):
            assert set(labels[:, 0].astype(int)) <= set(range(7))
            assert (labels[:, 1:] > 0).all() and (labels[:, 1:] <= 1).all()
    summary = json.loads((prepared_dir / "summary.json").read_text())
    assert sum(summary["splits"][s]["images"] for s in ("train", "val", "test")) == PHANTOM_IMAGES


def test_class_ids_follow_the_csv_lesion_types(prepared_dir: Path, phantom_dir: Path) -> None:
    rows = pd.concat(pd.read_csv(phantom_dir / "annotations" / f"{s}.csv", dtype=str) for s in ("train", "test"))
    table = pd.read_csv(prepared_dir / "classification.csv", dtype=str).set_index("image_id")
    for image_id, group in rows[rows.lesion_type != "No finding"].groupby("image_id"):
        labels = _labels(prepared_dir, table.loc[image_id, "split"], image_id)
        assert sorted(CLASS_NAMES[int(c)] for c in labels[:, 0]) == sorted(group.lesion_type)


def test_no_study_in_two_splits(prepared_dir: Path) -> None:
    table = pd.read_csv(prepared_dir / "classification.csv", dtype=str)
    assert (table.groupby("study_id").split.nunique() == 1).all()
    assert (table[table.split != "test"].groupby("study_id").fold.nunique() == 1).all()


def test_every_drawn_lesion_lies_inside_its_scaled_box(prepared_dir: Path) -> None:
    table = pd.read_csv(prepared_dir / "classification.csv", dtype=str).set_index("image_id")
    checked = 0
    for item in phantom_plan(PHANTOM_IMAGES, PHANTOM_SEED, PHANTOM_LONG_SIDE):
        with_lesions, boxes = render_phantom(item.spec)
        if not boxes:
            continue
        without, _ = render_phantom(item.spec, with_lesions=False)
        split = table.loc[item.image_id, "split"]
        cache = cv2.imread(str(prepared_dir / "images" / split / f"{item.image_id}.png"), cv2.IMREAD_GRAYSCALE)
        h, w = cache.shape
        changed = (
            cv2.resize((np.abs(with_lesions - without) > 0).astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA) > 0
        )
        inside = np.zeros_like(changed)
        for _, cx, cy, bw, bh in _labels(prepared_dir, split, item.image_id):
            x1, x2 = int(np.floor((cx - bw / 2) * w)) - 1, int(np.ceil((cx + bw / 2) * w)) + 1
            y1, y2 = int(np.floor((cy - bh / 2) * h)) - 1, int(np.ceil((cy + bh / 2) * h)) + 1
            assert changed[max(y1, 0) : y2, max(x1, 0) : x2].any()  # each box holds a drawn lesion
            inside[max(y1, 0) : y2, max(x1, 0) : x2] = True
        assert not (changed & ~inside).any()
        checked += 1
    assert checked >= 5


def test_rerun_restores_deleted_outputs_and_reuses_the_rest(
    prepared_dir: Path, phantom_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "prepared"
    shutil.copytree(prepared_dir, out)
    pngs = sorted((out / "images").rglob("*.png"))
    labels = sorted((out / "labels").rglob("*.txt"))
    originals = {p: p.read_bytes() for p in pngs[:3] + labels[:2]}
    for path in originals:
        path.unlink()
    temp = pngs[3].parent / f".{pngs[3].name}.abc.tmp"
    temp.write_bytes(b"half")  # a killed write leaves only a temp file
    stray = out / "images" / "train" / "not-in-the-release.png"
    stray.write_bytes(pngs[4].read_bytes())
    result = prepare_dataset(
        phantom_dir, out, PrepareConfig(long_side=CACHE_LONG_SIDE, folds=3, workers=1), progress=False
    )
    for path, content in originals.items():
        assert path.read_bytes() == content
    assert result.summary["reused_images"] == PHANTOM_IMAGES - 3
    assert not temp.exists() and not stray.exists()


def test_changed_parameters_rebuild_the_cache(prepared_dir: Path, phantom_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "prepared"
    shutil.copytree(prepared_dir, out)
    result = prepare_dataset(phantom_dir, out, PrepareConfig(long_side=96, folds=3, workers=1), progress=False)
    assert result.summary["reused_images"] == 0
    assert all(max(cv2.imread(str(p)).shape[:2]) == 96 for p in (out / "images").rglob("*.png"))


def test_bad_files_are_skipped_counted_and_exit_1(
    phantom_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "release"
    shutil.copytree(phantom_dir, source)
    victims = sorted((source / "train_images").iterdir())[:2]
    victims[0].write_bytes(victims[0].read_bytes()[:2000])  # truncated
    victims[1].unlink()  # missing
    train_csv = source / "annotations" / "train.csv"
    frame = pd.read_csv(train_csv, dtype=str)
    lesion = frame.index[frame.lesion_type != "No finding"][0]
    frame.loc[lesion, "lesion_type"] = "Fracture"  # not one of the 7 classes
    extra = frame.loc[[lesion]].assign(lesion_type="Osteophytes", xmin="50", xmax="50")  # zero width
    pd.concat([frame, extra]).to_csv(train_csv, index=False)

    out = tmp_path / "prepared"
    code = datasets_main(
        [
            "prepare",
            "--source",
            str(source),
            "--out",
            str(out),
            "--long-side",
            "64",
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert code == 1
    err = capsys.readouterr()
    assert victims[0].name in err.err and victims[1].name in err.err
    summary = json.loads((out / "summary.json").read_text())
    assert {s["image_id"] for s in summary["skipped_images"]} == {v.stem for v in victims}
    assert summary["remapped_lesion_types"] == {"Fracture": 1}
    assert summary["dropped_boxes"]["degenerate"] == 1
    table = pd.read_csv(out / "classification.csv", dtype=str)
    assert len(table) == PHANTOM_IMAGES - 2
    assert "PHANTOM^" not in err.out + err.err and "PID-" not in err.out + err.err
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in {".csv", ".json", ".yaml", ".txt"}:
            text = path.read_text()
            assert "PHANTOM^" not in text and "PID-" not in text


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert datasets_main(["prepare", "--source", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert datasets_main(["prepare", "--source", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "annotations/train.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        datasets_main(["prepare"])
    assert info.value.code == 2


def test_config_file_matches_the_defaults_and_typos_are_caught(tmp_path: Path) -> None:
    from dernet.config import ConfigError, from_mapping, load_clahe_params, load_yaml
    from dernet.imaging import ClaheParams

    root = Path(__file__).resolve().parents[1]
    assert from_mapping(PrepareConfig, load_yaml(root / "configs" / "data.yaml")["prepare"], "data") == PrepareConfig()
    for config in ("data.yaml", "demo/data.yaml"):
        assert load_clahe_params(root / "configs" / config) == ClaheParams(clip_limit=2.0, tile_grid=8)
    bad = tmp_path / "bad.yaml"
    bad.write_text("preprocessing:\n  clahe_clip: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'clahe_clip_limit'"):
        load_clahe_params(bad)
    with pytest.raises(ConfigError, match="did you mean 'long_side'"):
        from_mapping(PrepareConfig, {"long_sid": 512}, "data.yaml: prepare")


def test_ultralytics_reads_the_prepared_dataset(prepared_dir: Path) -> None:
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(prepared_dir / "data.yaml"))
    assert data["nc"] == 7
    dataset = YOLODataset(
        img_path=data["train"],
        data=data,
        imgsz=CACHE_LONG_SIDE,
        augment=False,
        rect=True,
        batch_size=1,
        single_cls=False,
        task="detect",
    )
    assert len(dataset) == len(list((prepared_dir / "images" / "train").glob("*.png")))
    boxes = sum(len(label["cls"]) for label in dataset.labels)
    assert boxes == sum(len(_labels_file(p)) for p in (prepared_dir / "labels" / "train").glob("*.txt"))
    image, _, _ = dataset.load_image(0)
    assert image.max() > 100  # not the near-black image a 16-bit cache would give


def _labels_file(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_training_at_an_input_larger_than_the_cache_is_refused(prepared_dir: Path) -> None:
    """A model input above the cache's long side would be upsampled from it: both trainers refuse, naming the fix."""
    from dernet.ensemble.data import RadiographDataModule
    from dernet.errors import UsageError
    from yolo_spine.train import train

    fix = f"the cache is {CACHE_LONG_SIDE} px, smaller than .* prepare again with --long-side {2 * CACHE_LONG_SIDE}"
    with pytest.raises(UsageError, match=fix):
        RadiographDataModule(str(prepared_dir), image_size=2 * CACHE_LONG_SIDE, num_workers=0)
    with pytest.raises(UsageError, match=fix):
        train({"data": str(prepared_dir / "data.yaml"), "imgsz": 2 * CACHE_LONG_SIDE, "model": "yolo11n.yaml"})
    RadiographDataModule(str(prepared_dir), image_size=CACHE_LONG_SIDE, num_workers=0)  # at the cache's size: fine
