"""`prepare`: the VinDr-SpineXR release to a windowed PNG cache, YOLO labels and a classification table.

Parallel over images, resumable (an image is done when its PNG exists at the expected size; every file is
written atomically), and tolerant: an unreadable image is reported, skipped and counted.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from ..cliutil import SPLITS
from ..config import ConfigError
from ..errors import MissingFileError
from ..fileio import write_json_atomic, write_text_atomic
from ..imaging import ClaheParams
from .cache import ImageJob, ImageResult, init_worker, prepare_image
from .preprocessing import DataPreprocessing
from .splits import assign_folds, rarest_label
from .summary import build_summary
from .vindr import CLASS_NAMES, AnnotatedImage, read_annotations

__all__ = ["PrepareConfig", "PrepareResult", "prepare_dataset"]

IMAGE_EXTENSIONS = (".dicom", ".dcm", "")
PARAMS_FILE = ".prepare.json"


@dataclass(frozen=True)
class PrepareConfig:
    """The `prepare` section of configs/data.yaml (comments there)."""

    long_side: int = 640
    folds: int = 5
    val_fold: int = 0
    seed: int = 42
    workers: int = 2
    min_box_px: float = 1.0

    def __post_init__(self) -> None:
        if self.long_side < 32:
            raise ConfigError(f"long_side must be at least 32 px, got {self.long_side}")
        if self.folds < 2 or not 0 <= self.val_fold < self.folds:
            raise ConfigError(
                f"need folds >= 2 and 0 <= val_fold < folds, got folds={self.folds}, val_fold={self.val_fold}"
            )
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")


@dataclass
class PrepareResult:
    """What a run produced: the output folder, the summary written there, and the skipped images."""

    out_dir: Path
    summary: dict = field(default_factory=dict)
    skipped: list[ImageResult] = field(default_factory=list)


def prepare_dataset(
    source: Path, out_dir: Path, config: PrepareConfig, progress: bool = True, clahe: ClaheParams | None = None
) -> PrepareResult:
    """Prepare the release at ``source`` into ``out_dir`` (layout in ARCHITECTURE.md); ``clahe`` is recorded in
    ``preprocessing.json`` for the loaders (it is applied at load, so changing it does not invalidate the cache).

    With ``config.workers > 1`` images are processed in spawned worker processes: a script calling this
    needs the usual ``if __name__ == "__main__":`` guard.
    """
    source, out_dir = Path(source), Path(out_dir).resolve()
    annotations, remapped = _read_release(source)
    table = _assign_splits(annotations, config)
    reset_if_parameters_changed(out_dir, config)

    jobs = [_job(row, annotations[row.image_id], source, out_dir, config) for row in table.itertuples()]
    kept, results, skipped = cache_images(table, jobs, out_dir, config, progress)
    _write_data_yaml(out_dir)
    summary = build_summary(kept, annotations, results, remapped, config, source)
    write_json_atomic(out_dir / "summary.json", summary)
    save_preprocessing(out_dir, config, clahe)
    return PrepareResult(out_dir=out_dir, summary=summary, skipped=skipped)


def cache_images(
    table: pd.DataFrame, jobs: list[ImageJob], out_dir: Path, config: PrepareConfig, progress: bool
) -> tuple[pd.DataFrame, list[ImageResult], list[ImageResult]]:
    """Run the image jobs (one per table row), add each image's original width and height to ``table``, drop the
    rows of skipped images and stale cache files, and write classification.csv. Returns the kept rows, every
    job's result and the skipped ones."""
    results = {r.image_id: r for r in _run_jobs(jobs, config.workers, progress)}
    table["width"] = [results[i].width for i in table.image_id]
    table["height"] = [results[i].height for i in table.image_id]
    skipped = [r for r in results.values() if r.error]
    kept = table[~table.image_id.isin({r.image_id for r in skipped})]
    _remove_stale_files(out_dir, set(zip(kept.split, kept.image_id, strict=True)))
    write_text_atomic(out_dir / "classification.csv", kept.to_csv(index=False))
    return kept, list(results.values()), skipped


def save_preprocessing(out_dir: Path, config: PrepareConfig, clahe: ClaheParams | None) -> None:
    """preprocessing.json: the cache's long side and the CLAHE the loaders apply (the default when None)."""
    clahe = clahe or ClaheParams()
    DataPreprocessing(config.long_side, clahe.clip_limit, clahe.tile_grid).save(out_dir)


def _read_release(source: Path) -> tuple[dict[str, AnnotatedImage], Counter]:
    remapped: Counter = Counter()
    annotations: dict[str, AnnotatedImage] = {}
    for split in ("train", "test"):
        csv_path = source / "annotations" / f"{split}.csv"
        if not csv_path.is_file():
            raise MissingFileError(
                f"{csv_path}: not found; --source must be the VinDr-SpineXR release folder "
                "(annotations/train.csv, annotations/test.csv, train_images/, test_images/)"
            )
        annotations.update(read_annotations(csv_path, split, remapped))
    return annotations, remapped


def _assign_splits(annotations: dict[str, AnnotatedImage], config: PrepareConfig) -> pd.DataFrame:
    """One row per image: split (train/val/test) and fold, chosen by study on the release's train split."""
    rows = [
        {
            "image_id": image.image_id,
            "study_id": image.study_id,
            "split": image.split,
            "fold": -1,
            "abnormal": int(image.abnormal),
            "lesion_types": ";".join(n for n in CLASS_NAMES if n in image.lesion_types),
        }
        for image in annotations.values()
    ]
    table = pd.DataFrame(rows)
    train = table.split == "train"
    frequency = Counter(t for types in table[train].lesion_types for t in types.split(";") if t)
    strata = [rarest_label(set(filter(None, t.split(";"))), frequency) for t in table[train].lesion_types]
    table.loc[train, "fold"] = assign_folds(list(table[train].study_id), strata, config.folds, config.seed)
    table.loc[train & (table.fold == config.val_fold), "split"] = "val"
    table["path"] = [f"images/{s}/{i}.png" for s, i in zip(table.split, table.image_id, strict=True)]
    return table


def reset_if_parameters_changed(out_dir: Path, config: PrepareConfig) -> None:
    """Cached images are reused only if they were made with the same size, folds and seed."""
    params_path = out_dir / PARAMS_FILE
    wanted = {k: v for k, v in asdict(config).items() if k != "workers"}
    previous = json.loads(params_path.read_text()) if params_path.is_file() else None
    if previous != wanted and any((out_dir / d).exists() for d in ("images", "labels")):
        print(f"{out_dir}: earlier outputs were made with other parameters; preparing again", file=sys.stderr)
        for sub in ("images", "labels"):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(params_path, wanted)


def _job(row, image: AnnotatedImage, source: Path, out_dir: Path, config: PrepareConfig) -> ImageJob:
    release_split = "test" if row.split == "test" else "train"
    folder = source / f"{release_split}_images"
    candidates = [folder / f"{row.image_id}{ext}" for ext in IMAGE_EXTENSIONS]
    path = next((p for p in candidates if p.is_file()), candidates[0])
    return ImageJob(
        image_id=row.image_id,
        source=path,
        split=row.split,
        boxes=tuple(image.boxes),
        out_dir=out_dir,
        long_side=config.long_side,
        min_box_px=config.min_box_px,
    )


def _run_jobs(jobs: list[ImageJob], workers: int, progress: bool) -> list[ImageResult]:
    bar = dict(total=len(jobs), desc="prepare", unit="img", disable=not progress, file=sys.stderr)
    if workers == 1:
        return [prepare_image(job) for job in tqdm(jobs, **bar)]
    # spawn, not fork: a forked child can inherit OpenCV's or OpenMP's thread pools mid-use and hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker) as pool:
        return list(tqdm(pool.map(prepare_image, jobs, chunksize=2), **bar))


def _remove_stale_files(out_dir: Path, kept: set[tuple[str, str]]) -> None:
    """Drop cached images and labels that are no longer in the table (Ultralytics would train on them)."""
    for kind, suffix in (("images", ".png"), ("labels", ".txt")):
        for split in SPLITS:
            for path in (out_dir / kind / split).glob("*"):
                stale = path.suffix == suffix and (split, path.stem) not in kept
                if stale or path.name.endswith(".tmp"):  # temp files of a killed run
                    path.unlink(missing_ok=True)


def _write_data_yaml(out_dir: Path) -> None:
    """Ultralytics dataset file. `path` is absolute: Ultralytics resolves a relative one under its own
    datasets folder, not beside this file."""
    lines = [f"path: {out_dir}", "train: images/train", "val: images/val", "test: images/test", "names:"]
    lines += [f"  {i}: {name}" for i, name in enumerate(CLASS_NAMES)]
    write_text_atomic(out_dir / "data.yaml", "\n".join(lines) + "\n")
