"""`python -m yolo_spine.train --config configs/yolo_spine.yaml [key=value ...]`: train the lesion detector.

Keys of ours (model, mosaic_cutoff_epoch, focal*, clahe*) are translated here; every other key is an
Ultralytics train argument and goes to it unchanged (Ultralytics validates them and suggests the nearest key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from dernet.cliutil import run_command
from dernet.config import ConfigError, load_yaml
from dernet.datasets.preprocessing import check_input_fits
from dernet.errors import MissingFileError, require_extra

from .glue import Callbacks, add_callbacks, yolo_model
from .options import SpineOptions
from .schedule import close_mosaic_for

__all__ = ["main", "train"]

ARCHITECTURES = ("yolo11", "yolo12", "yolov8", "yolov9", "yolov10", "yolo26", "rtdetr")


def train(config: dict[str, Any], callbacks: Callbacks | None = None) -> Path:
    """Train from a config mapping; returns the run folder (weights in ``weights/best.pt``). ``callbacks``: Ultralytics
    event name -> functions of the trainer (e.g. ``{"on_train_batch_end": [record]}``), added to the model."""
    config = dict(config)
    data_yaml = Path(str(config.get("data", "data/prepared/data.yaml")))
    options = SpineOptions.from_config(config, data_yaml.parent)  # CLAHE: the prepared data's, or an override
    check_input_fits(data_yaml.parent, int(config.get("imgsz", 640)), "imgsz")  # Ultralytics' default is 640
    model_spec = _model_spec(str(config.pop("model", "yolo11l.yaml")))
    epochs = int(config.get("epochs", 55))
    config["close_mosaic"] = close_mosaic_for(epochs, int(config.pop("mosaic_cutoff_epoch", 25)))
    config["project"] = str(Path(config.get("project", "runs/yolo_spine")).resolve())  # never site-packages

    model = yolo_model(model_spec)
    from .trainer import SpineDetectionTrainer  # imports Ultralytics: after yolo_model set its environment up

    add_callbacks(model, callbacks)
    model.train(trainer=SpineDetectionTrainer.with_options(options), **config)
    return Path(model.trainer.save_dir)


def _model_spec(spec: str) -> str:
    """An architecture YAML (built with random weights) or an existing local .pt file: never a download."""
    if spec.endswith(".pt"):
        if not Path(spec).is_file():
            raise MissingFileError(
                f"{spec}: weights file not found; give a local .pt file, or an architecture such as yolo11l.yaml "
                "to start from random weights (nothing is downloaded)"
            )
        return spec
    if not spec.endswith(".yaml") or not (Path(spec).is_file() or Path(spec).name.startswith(ARCHITECTURES)):
        raise ConfigError(f"model: '{spec}' is neither a local .pt file nor an architecture YAML like yolo11l.yaml")
    return spec


def load_config(path: Path, overrides: list[str]) -> dict[str, Any]:
    """The YAML, with ``key=value`` overrides (values parsed as YAML: 10, 1e-4, true, null, [0, 1])."""
    config = load_yaml(path)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override '{item}' must look like key=value")
        config[key] = yaml.safe_load(value)
    return config


def main(argv: list[str] | None = None, prog: str = "python -m yolo_spine.train") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/yolo_spine.yaml"))
    parser.add_argument("overrides", nargs="*", help="key=value, e.g. epochs=10 imgsz=1024 device=0,1")
    args = parser.parse_args(argv)

    def run(args: argparse.Namespace) -> int:
        require_extra("train")
        run_dir = train(load_config(args.config, args.overrides))
        print(f"weights: {run_dir / 'weights' / 'best.pt'} (and last.pt); run folder {run_dir}")
        return 0

    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
