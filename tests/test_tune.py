"""`python -m dernet tune`: an Optuna study of a member through the real CLI on the tiny phantom, resumed; pruning
that stops a trial; the best trial's YAML trains; the space file's mistakes are one line; a ConvNeXt member."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dernet.ensemble.cli import main as dernet_main

from .conftest import ROOT, quick

optuna = pytest.importorskip("optuna")

MEMBER = ROOT / "configs/demo/ensemble/resnet50.yaml"
SPACE = {
    "seed": 3,
    "pruner": "none",
    "params": {
        "model.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True},
        "model.optimizer": {"type": "categorical", "choices": ["adamw", "sgd"]},
        "data.batch_size": {"type": "categorical", "choices": [4, 8]},
    },
}


def _space(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**SPACE, **changes}))
    return path


def test_a_study_runs_resumes_and_writes_a_member_yaml_that_trains(prepared_dir: Path, tmp_path: Path, capsys) -> None:
    space, out = _space(tmp_path), tmp_path / "tune"
    args = ["tune", "--config", str(MEMBER), "--space", str(space), "--out", str(out),
            *quick(prepared_dir, tmp_path, 2)]  # fmt: skip
    assert dernet_main([*args[:5], "--trials", "2", *args[5:]]) == 0
    first = capsys.readouterr().out
    assert "trial 0: val AUROC" in first and "trial 1: val AUROC" in first
    assert dernet_main([*args[:5], "--trials", "3", *args[5:]]) == 0  # resumed: one more trial, not three
    again = capsys.readouterr().out
    assert "resuming with 2 finished trial(s)" in again and "trial 2:" in again and "trial 0:" not in again

    study = optuna.load_study(study_name="resnet50", storage=f"sqlite:///{out}/resnet50.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3  # the resumed sampler did not repeat
    summary = json.loads((out / "resnet50" / "summary.json").read_text())
    best = max(study.trials, key=lambda t: t.value)
    assert summary["best"]["trial"] == best.number and summary["best"]["val_auroc"] == pytest.approx(best.value)
    assert summary["trials"]["complete"] == 3 and len(summary["top"]) == 3
    for trial in study.trials:  # each trial's run is a member run: its config and checkpoint
        run = out / "resnet50" / f"trial_{trial.number}"
        assert (run / "checkpoints" / "best.ckpt").is_file()
        ran = yaml.safe_load((run / "config.yaml").read_text())
        assert ran["model"]["lr"] == pytest.approx(trial.params["model.lr"])
    assert (out / "resnet50" / "history.png").stat().st_size > 10_000
    assert "| trial | val AUROC |" in (out / "resnet50" / "summary.md").read_text()

    tuned = out / "resnet50" / "best.yaml"
    text = tuned.read_text()
    assert f"trial {best.number} of the search" in text and "# float: learning rate" in text  # comments kept
    config = yaml.safe_load(text)
    assert config["model"]["lr"] == pytest.approx(best.params["model.lr"])
    assert config["model"]["optimizer"] == best.params["model.optimizer"]
    assert config["data"]["batch_size"] == best.params["data.batch_size"]
    assert config["trainer"]["logger"]["init_args"]["name"] == "resnet50_tuned"
    runs = tmp_path / "tuned_runs"
    # the best YAML trains; the trials' overrides came before their searched values, so the batch size goes back last
    batch = ["--data.batch_size", str(config["data"]["batch_size"])]
    assert dernet_main(["fit", "--config", str(tuned), *quick(prepared_dir, runs, 2), *batch]) == 0
    trained = yaml.safe_load((runs / "resnet50_tuned" / "config.yaml").read_text())
    assert trained["model"]["optimizer"] == best.params["model.optimizer"]
    metrics = pd.read_csv(runs / "resnet50_tuned" / "metrics.csv")  # and, seeded, reproduces the trial's AUROC
    assert metrics.val_auroc.max() == pytest.approx(best.value, abs=1e-6)


def test_the_pruning_callback_stops_a_trial_after_its_first_epoch(prepared_dir: Path, tmp_path: Path) -> None:
    from dernet.ensemble.cli import run_lightning
    from dernet.ensemble.tune import PruneOnValAUROC

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01))

    def objective(trial: optuna.Trial) -> float:  # a real fit of 3 epochs; the pruner stops anything below 1.01
        args = ["fit", "--config", str(MEMBER), *quick(prepared_dir, tmp_path, 1), "--trainer.max_epochs", "3"]
        cli = run_lightning(args, callbacks=[PruneOnValAUROC(trial)])
        return float(cli.trainer.checkpoint_callback.best_model_score)

    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [0]
    metrics = pd.read_csv(tmp_path / "resnet50" / "metrics.csv")
    assert set(metrics.epoch.dropna().astype(int)) == {0}  # epochs 1 and 2 never ran


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": {"model.learning_rate": {"type": "float", "low": 0.1, "high": 1.0}}},
         "has no model key 'learning_rate'"),
        ({"params": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}}, "a key is <section>.<name>"),
        ({"params": {"model.lr": {"type": "float", "low": 1.0, "high": 0.1}}}, "needs low < high"),
        ({"params": {"model.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "log needs low > 0"),
        ({"params": {"model.optimizer": {"type": "categorical"}}}, "needs a non-empty 'choices' list"),
        ({"pruner": "patient"}, "pruner must be one of median, hyperband, none, got 'patient'"),
        ({"sampler": "tpe"}, "unknown key 'sampler'"),
    ],
)
def test_space_mistakes_are_one_line(tmp_path: Path, capsys, change: dict, message: str) -> None:
    space = _space(tmp_path, **change)
    assert dernet_main(["tune", "--config", str(MEMBER), "--space", str(space), "--trials", "1"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(space) in err and "Traceback" not in err


def test_a_convnext_member_trains_joins_an_ensemble_and_exports(
    trained: dict, exported_models: Path, tmp_path: Path
) -> None:
    import dataclasses
    import shutil

    from dernet.deploy.manifest import load_manifest
    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.fit_ensemble import fit_ensemble
    from dernet.export.classifier import export_classifier

    config = ROOT / "configs/ensemble/convnext_tiny.yaml"
    args = ["fit", "--config", str(config), *quick(trained["prepared"], tmp_path, 1), "--model.pretrained", "false"]
    assert dernet_main(args) == 0
    convnext = tmp_path / "convnext_tiny" / "checkpoints" / "best.ckpt"
    members = {"densenet121": load_ensemble_config(trained["ensemble_yaml"]).members["densenet121"],
               "convnext_tiny": str(convnext)}  # fmt: skip
    ensemble = dataclasses.replace(load_ensemble_config(trained["ensemble_yaml"]), members=members, weights="fit",
                                   output=str(tmp_path / "ensemble.json"))  # fmt: skip
    record = fit_ensemble(ensemble)
    assert record.names == ["densenet121", "convnext_tiny"] and sum(record.weights) == pytest.approx(1.0)
    models = tmp_path / "models"
    shutil.copytree(exported_models, models)  # the tiny detector stays; the classifier is replaced
    spec = export_classifier(tmp_path / "ensemble.json", trained["prepared"], models)
    assert spec.verified_max_abs_diff <= 1e-4 and load_manifest(models).classifier.members == tuple(record.names)
