"""Optimizers and schedules by name (dernet.training.optim): DERNet's AdamW + cosine, the papers' SGD + steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dernet.config import ConfigError
from dernet.training.optim import StepSchedule, WarmupCosine, build_optimizer, build_schedule


def _model() -> nn.Module:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    model[0].weight.requires_grad_(False)  # a frozen tensor never reaches the optimizer
    return model


def test_sgd_and_adamw_by_name_over_the_trainable_parameters() -> None:
    sgd = build_optimizer(_model().parameters(), "sgd", 0.001, 1e-4, momentum=0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["lr"] == 0.001
    assert sum(len(g["params"]) for g in sgd.param_groups) == 3  # 4 tensors, one frozen
    adamw = build_optimizer(_model().parameters(), "adamw", 1e-4, 1e-2)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["weight_decay"] == 1e-2
    with pytest.raises(ConfigError, match="optimizer must be one of adamw, sgd, got 'adam'"):
        build_optimizer(_model().parameters(), "adam", 1e-4, 0.0)


def test_step_schedule_warms_up_then_cuts_at_each_milestone_and_is_constant_without_them() -> None:
    schedule = StepSchedule(warmup_steps=10, milestones=[30, 20], gamma=0.1)
    assert schedule(0) == pytest.approx(1e-3) and schedule(5) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert [schedule(s) for s in (10, 19, 20, 29, 30)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    assert {StepSchedule(0, [], 0.1)(s) for s in range(100)} == {1.0}  # VinDr-SpineXR's constant rate


def test_lightning_schedule_entries_step_per_epoch_for_cosine_and_per_step_for_steps() -> None:
    optimizer = build_optimizer(_model().parameters(), "sgd", 0.01, 0.0)
    cosine = build_schedule(optimizer, "cosine", epochs=4)
    assert cosine["interval"] == "epoch" and cosine["scheduler"].T_max == 4
    steps = build_schedule(build_optimizer(_model().parameters(), "sgd", 0.01, 0.0), "step", milestones=[2])
    assert steps["interval"] == "step"
    for _ in range(2):
        steps["scheduler"].optimizer.step()
        steps["scheduler"].step()
    assert steps["scheduler"].get_last_lr() == pytest.approx([0.001])
    with pytest.raises(ConfigError, match="schedule must be one of cosine, step"):
        build_schedule(optimizer, "onecycle")


def test_cosine_after_a_warm_up_steps_per_step_from_the_warm_up_down_to_zero() -> None:
    schedule = WarmupCosine(warmup_steps=10, total_steps=110)
    assert schedule(0) == pytest.approx(1e-3) and schedule(5) == pytest.approx(1e-3 + (1 - 1e-3) * 0.5)
    assert [schedule(s) for s in (10, 60, 110, 200)] == pytest.approx([1.0, 0.5, 0.0, 0.0], abs=1e-12)
    entry = build_schedule(build_optimizer(_model().parameters(), "adamw", 0.01, 0.0), "cosine", epochs=4,
                           warmup_steps=10, total_steps=110)  # fmt: skip
    assert entry["interval"] == "step" and entry["scheduler"].get_last_lr() == pytest.approx([1e-5])
    with pytest.raises(ConfigError, match="warmup_steps 10 needs a run longer than that .it has 8 optimizer steps"):
        build_schedule(entry["scheduler"].optimizer, "cosine", warmup_steps=10, total_steps=8)


def test_every_member_starts_at_p_one_half_whatever_timm_draws_for_its_head() -> None:
    """timm draws EfficientNet's one-output head from U(-1, 1); from there the demo's member diverged."""
    from dernet.ensemble.backbones import create_backbone

    for name in ("tf_efficientnetv2_s", "resnet18"):
        net = create_backbone(name, pretrained=False, pretrained_path=None, in_chans=1).train()
        assert not net.get_classifier().weight.any() and not net.get_classifier().bias.any()
        assert torch.equal(net(torch.rand(2, 1, 64, 64)), torch.zeros(2, 1))


def test_a_member_names_a_bad_optimizer_or_schedule_in_one_line() -> None:
    from dernet.ensemble.member import MemberClassifier

    with pytest.raises(ConfigError, match="optimizer must be one of"):
        MemberClassifier("resnet18", 32, pretrained=False, optimizer="rmsprop")
    with pytest.raises(ConfigError, match="schedule must be one of"):
        MemberClassifier("resnet18", 32, pretrained=False, schedule="poly")


def test_cosine_without_max_epochs_is_refused_in_one_line() -> None:
    """Lightning's max_epochs -1 (a run bounded by max_steps) would make a one-epoch cosine that restarts."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from dernet.ensemble.member import MemberClassifier

    data = DataLoader(TensorDataset(torch.rand(4, 1, 32, 32), torch.tensor([0.0, 1.0] * 2)), batch_size=2)
    trainer = pl.Trainer(max_epochs=-1, max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    with pytest.raises(ConfigError, match="schedule cosine anneals over trainer.max_epochs, which is -1"):
        trainer.fit(MemberClassifier("resnet18", 32, pretrained=False), data)


def test_the_vindr_spinexr_recipe_is_the_papers_sgd_and_an_unweighted_logit_average() -> None:
    import yaml

    from dernet.ensemble.ensemble_config import load_ensemble_config
    from dernet.ensemble.member import MemberClassifier

    from .conftest import ROOT

    folder = ROOT / "configs/vindr_spinexr"
    ensemble = load_ensemble_config(folder / "ensemble.yaml")
    assert list(ensemble.members) == ["densenet121", "densenet169", "densenet201"]
    assert ensemble.weights == [1, 1, 1] and ensemble.combine == "logit" and ensemble.fit_split == "val"
    for name in ensemble.members:
        recipe = yaml.safe_load((folder / f"{name}.yaml").read_text())
        assert recipe["trainer"]["max_steps"] == 10_000 and recipe["data"]["batch_size"] == 32
        model = recipe["model"]
        assert (model["backbone"], model["image_size"], model["optimizer"], model["lr"]) == (name, 224, "sgd", 1e-3)
        assert model["schedule"] == "step" and model["milestones"] == [] and model["pretrained"] is True
    member = MemberClassifier(**{**model, "pretrained": False})  # the keys are the member's own
    assert member.hparams.optimizer == "sgd" and member.hparams.warmup_steps == 1000


def test_an_sgd_recipe_trains_through_the_real_cli_with_its_warm_up(prepared_dir: Path, tmp_path: Path) -> None:
    from dernet.ensemble.cli import main as dernet_main

    from .conftest import ROOT, quick

    config = ROOT / "configs/vindr_spinexr/densenet121.yaml"
    args = ["fit", "--config", str(config), *quick(prepared_dir, tmp_path), "--model.pretrained", "false",
            "--model.warmup_steps", "1000"]  # the recipe's own, which quick() turns off  # fmt: skip
    assert dernet_main(args) == 0
    saved = torch.load(tmp_path / "densenet121" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    group = saved["optimizer_states"][0]["param_groups"][0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4  # SGD, from the YAML
    assert group["lr"] == pytest.approx(1e-3 * (1e-3 + (1 - 1e-3) * 2 / 1000))  # two steps into the warm-up
