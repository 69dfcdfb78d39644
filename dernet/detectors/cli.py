"""`python -m dernet.detectors fit --config configs/detectors/faster_rcnn_r50_fpn.yaml`: train a torchvision detector.

LightningCLI, as the ensemble members: every key of the YAML can be overridden (--trainer.devices 4
--trainer.strategy ddp, --model.lr 0.01, ...); `validate` re-runs validation of a checkpoint (--ckpt_path).
"""

from __future__ import annotations

import warnings

from pytorch_lightning.cli import LightningCLI

from ..cliutil import run_command
from .data import DetectionDataModule
from .module import LesionDetector

__all__ = ["DetectorCLI", "main"]


class DetectorCLI(LightningCLI):
    """LightningCLI for one detector: the canvas size and the batch size flow from one place to the other."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("model.imgsz", "data.imgsz")
        parser.link_arguments("data.batch_size", "model.batch_size")


def main(argv: list[str] | None = None, prog: str = "python -m dernet.detectors") -> int:
    def run(argv: list[str] | None) -> int:
        with warnings.catch_warnings():
            # LightningCLI warns when args are given while sys.argv has some: on purpose (spine-cad's subcommand).
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter", category=UserWarning)
            DetectorCLI(LesionDetector, DetectionDataModule, save_config_kwargs={"overwrite": True}, args=argv,
                        parser_kwargs={"prog": prog})  # fmt: skip
        return 0

    return run_command(run, argv)
