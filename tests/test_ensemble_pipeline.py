"""The ensemble end to end on the phantom: LightningCLI runs, cross-validation folds, fitting, evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dernet.datasets.tables import read_table, split_rows
from dernet.ensemble.cli import main as dernet_main

from .conftest import MEMBERS, quick

ROOT = Path(__file__).resolve().parents[1]


def test_each_run_saves_its_resolved_config_and_checkpoints(trained: dict) -> None:
    for name in MEMBERS:
        run = trained["runs"] / name
        assert (run / "checkpoints" / "best.ckpt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
        resolved = yaml.safe_load((run / "config.yaml").read_text())
        assert resolved["model"]["backbone"] == name and resolved["model"]["image_size"] == 64
        assert "val_auroc" in pd.read_csv(run / "metrics.csv").columns


def test_fit_ensemble_uses_validation_only(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prepared = tmp_path / "prepared"
    shutil.copytree(trained["prepared"], prepared)
    for png in (prepared / "images" / "test").glob("*.png"):
        png.unlink()  # fitting must not need (or read) a single test image
    config = yaml.safe_load(trained["ensemble_yaml"].read_text())
    config.update(data_dir=str(prepared), weights="fit", weight_step=0.1, output=str(tmp_path / "ensemble.json"))
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert dernet_main(["fit-ensemble", "--config", str(path)]) == 0
    saved = json.loads((tmp_path / "ensemble.json").read_text())
    val = split_rows(read_table(prepared), "val")
    assert saved["chosen_on"]["split"] == "val" and saved["chosen_on"]["images"] == len(val)
    assert [m["name"] for m in saved["members"]] == MEMBERS
    assert sum(saved["weights"]) == pytest.approx(1.0) and 0.0 <= saved["threshold"] <= 1.0
    assert "threshold" in capsys.readouterr().out


def test_test_split_cannot_choose_anything(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(trained["ensemble_yaml"].read_text())
    config["fit_split"] = "test"
    path = tmp_path / "ensemble.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert dernet_main(["fit-ensemble", "--config", str(path)]) == 2
    assert "never 'test'" in capsys.readouterr().err


def test_evaluate_writes_table_json_and_roc(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert dernet_main(["fit-ensemble", "--config", str(trained["ensemble_yaml"])]) == 0
    saved = json.loads((trained["runs"] / "ensemble.json").read_text())
    assert saved["weights"] == [0.42, 0.32, 0.26] and saved["weights_source"] == "DERNet paper"
    assert dernet_main(["evaluate-ensemble", "--config", str(trained["ensemble_yaml"]), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "| **ensemble** |" in out and all(f"| {name} |" in out for name in MEMBERS)
    results = json.loads((trained["runs"] / "evaluation_test.json").read_text())
    test_rows = split_rows(read_table(trained["prepared"]), "test")
    assert results["images"] == len(test_rows)
    for entry in results["models"].values():
        for metric, (low, high) in entry["ci95"].items():
            assert low <= entry["metrics"][metric] <= high
    assert (trained["runs"] / "roc_test.png").stat().st_size > 10_000
    assert (trained["runs"] / "evaluation_test.md").read_text().startswith("Split `test`")


def test_two_fold_cross_validation_keeps_studies_apart(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    table = read_table(trained["prepared"])
    val_sets = [set(split_rows(table, "val", fold).study_id) for fold in (0, 1)]
    train_0 = set(split_rows(table, "train", 0).study_id)
    assert val_sets[0] and val_sets[1] and not val_sets[0] & val_sets[1] and not val_sets[0] & train_0
    assert not set(table[table.split == "test"].study_id) & (val_sets[0] | train_0)

    config = ROOT / "configs/demo/ensemble/resnet50.yaml"
    assert (
        dernet_main(["cv", "--folds", "2", "--config", str(config), *quick(trained["prepared"], trained["runs"], 1)])
        == 0
    )
    summary = json.loads((trained["runs"] / "resnet50" / "cv" / "summary.json").read_text())
    assert summary["folds"] == 2 and len(summary["val_auroc"]) == 2
    assert "± " in capsys.readouterr().out


def test_resume_from_last_checkpoint_continues_training(trained: dict, tmp_path: Path) -> None:
    config = str(ROOT / "configs/demo/ensemble/resnet50.yaml")
    assert dernet_main(["fit", "--config", config, *quick(trained["prepared"], tmp_path, 1)]) == 0
    last = tmp_path / "resnet50" / "checkpoints" / "last.ckpt"
    overrides = [*quick(trained["prepared"], tmp_path, 1), "--trainer.max_epochs", "2"]
    assert dernet_main(["fit", "--config", config, *overrides, "--ckpt_path", str(last)]) == 0
    epochs = pd.read_csv(tmp_path / "resnet50" / "metrics.csv").dropna(subset=["val_auroc"]).epoch
    # the second run picked up at epoch 1, not from scratch (Lightning's CSV logger starts a new metrics.csv)
    assert list(epochs) == [1]
