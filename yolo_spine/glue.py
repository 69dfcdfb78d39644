"""Everything this project asks of Ultralytics, in one place: its environment, our dataset, quiet exports.

The supported Ultralytics releases are pinned in pyproject.toml (the train extra): :func:`build_clahe_dataset`
follows one of its functions, which changes between releases. Nothing here imports Ultralytics at module level:
:func:`setup_ultralytics` must run first, because Ultralytics reads its environment when imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dernet.imaging import ClaheParams

__all__ = [
    "PROJECT_ULTRALYTICS_DIR",
    "add_callbacks",
    "build_clahe_dataset",
    "ensure_config_dir",
    "quiet_ultralytics",
    "setup_ultralytics",
    "yolo_model",
]

PROJECT_ULTRALYTICS_DIR = Path(".ultralytics")
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")

Callbacks = Mapping[str, Sequence[Callable[[Any], None]]]  # Ultralytics event name -> functions of the trainer


def ensure_config_dir(config_dir: str | os.PathLike | None = None) -> Path:
    """Ultralytics' settings folder ($YOLO_CONFIG_DIR, else ./.ultralytics), with local fonts.

    Ultralytics downloads `Arial.ttf` into it the first time it draws labels or checks a dataset; any TTF under that
    name satisfies it, and matplotlib (an Ultralytics dependency) ships DejaVuSans.
    """
    import matplotlib

    target = Path(config_dir or os.environ.get("YOLO_CONFIG_DIR") or PROJECT_ULTRALYTICS_DIR)
    target.mkdir(parents=True, exist_ok=True)
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in _FONT_NAMES:
        if not (target / name).exists():
            shutil.copyfile(font, target / name)
    return target


def setup_ultralytics() -> None:
    """Before Ultralytics is imported: settings inside the project, no pip installs of its own, no analytics.

    It never sets the offline switches (YOLO_OFFLINE): a user with internet keeps it; tests, CI and the demo set them.
    """
    os.environ.setdefault("YOLO_CONFIG_DIR", str(PROJECT_ULTRALYTICS_DIR.resolve()))
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    ensure_config_dir()
    from ultralytics import settings

    if settings.get("sync", True):
        settings.update({"sync": False})


def yolo_model(weights: str | os.PathLike) -> Any:
    """An Ultralytics detection model from weights or an architecture YAML, after :func:`setup_ultralytics`."""
    setup_ultralytics()
    from ultralytics import YOLO

    return YOLO(str(weights), task="detect")


def trained_imgsz(model: Any, imgsz: int | None = None) -> int:
    """``imgsz`` when given, else the input size the YOLO weights were trained at (640 if they do not say)."""
    return int(imgsz or model.ckpt.get("train_args", {}).get("imgsz", 640))


def add_callbacks(model: Any, callbacks: Callbacks | None) -> None:
    """Register trainer callbacks through Ultralytics' public ``Model.add_callback`` (they reach the trainer it
    builds)."""
    for event, functions in (callbacks or {}).items():
        for function in functions:
            model.add_callback(event, function)


def build_clahe_dataset(
    cfg: Any,
    img_path: str,
    batch: int | None,
    data: dict[str, Any],
    mode: str,
    stride: int,
    clahe: ClaheParams,
    rect: bool = False,
) -> Any:
    """Ultralytics' YOLO dataset with our preprocessing (yolo_spine.dataset.ClaheYOLODataset).

    Follows ``ultralytics.data.build.build_yolo_dataset`` (8.4), detection branch: that public builder takes no
    dataset class, so this is its one copy, kept beside the version pin. Both the trainer and the validator use it.
    """
    from ultralytics.data.utils import get_split_fraction
    from ultralytics.utils import colorstr

    from .dataset import ClaheYOLODataset

    return ClaheYOLODataset(
        img_path=img_path,
        imgsz=cfg.imgsz,
        batch_size=batch,
        augment=mode == "train",
        hyp=cfg,
        rect=cfg.rect or rect,
        cache=cfg.cache or None,
        single_cls=cfg.single_cls or False,
        stride=stride,
        pad=0.0 if mode == "train" else 0.5,
        prefix=colorstr(f"{mode}: "),
        task=cfg.task,
        classes=cfg.classes,
        data=data,
        fraction=get_split_fraction(cfg.fraction, "train" if mode == "train" else (cfg.split or "val")),
        clahe=clahe,
    )


@contextlib.contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Ultralytics logs its export banner at INFO whatever ``verbose`` says; keep warnings only."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


if __name__ == "__main__":  # `make` creates the settings folder (and its fonts) once, before the demo
    print(ensure_config_dir())
