"""Multi-GPU training is configuration only: simulate DDP with two CPU processes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dernet.ensemble.cli import main as dernet_main

from .test_ensemble_pipeline import ROOT, quick


@pytest.mark.slow
def test_ddp_spawn_with_two_cpu_processes(prepared_dir: Path, tmp_path: Path) -> None:
    config = ROOT / "configs/demo/ensemble/resnet50.yaml"
    overrides = [*quick(prepared_dir, tmp_path, steps=2), "--trainer.strategy", "ddp_spawn", "--trainer.devices", "2"]
    assert dernet_main(["fit", "--config", str(config), *overrides]) == 0
    run = tmp_path / "resnet50"
    assert (run / "checkpoints" / "best.ckpt").is_file()
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics.val_auroc.notna().any()  # gathered from both processes
