"""The three real backbones train on phantom data; checkpoints reload; pretrained weights never wait."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import timm
import torch

from dernet.ensemble import MemberClassifier, RadiographDataModule
from dernet.ensemble.backbones import PretrainedWeightsWarning, create_backbone
from dernet.ensemble.predict import load_member

BACKBONES = ["densenet121", "tf_efficientnetv2_s", "resnet50"]


def _trainer(**kwargs) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return pl.Trainer(**{**defaults, **kwargs})


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_trains_a_few_steps(backbone: str, prepared_dir: Path) -> None:
    pl.seed_everything(0)
    data = RadiographDataModule(str(prepared_dir), image_size=64, batch_size=4, num_workers=0)
    model = MemberClassifier(backbone, image_size=64, pretrained=False, pos_weight=data.pos_weight)
    trainer = _trainer()
    trainer.fit(model, datamodule=data)
    assert np.isfinite(float(trainer.callback_metrics["train_loss_step"]))
    assert 0.0 <= float(trainer.callback_metrics["val_auroc"]) <= 1.0


def test_checkpoint_reloads_to_identical_outputs(prepared_dir: Path, tmp_path: Path) -> None:
    data = RadiographDataModule(str(prepared_dir), image_size=64, batch_size=4, num_workers=0)
    model = MemberClassifier("resnet50", image_size=64, pretrained=False)
    trainer = _trainer(limit_train_batches=1)
    trainer.fit(model, datamodule=data)
    trainer.save_checkpoint(tmp_path / "member.ckpt")
    images, _ = next(iter(data.val_dataloader()))
    with torch.inference_mode():
        expected = model.eval()(images)
    reloaded = load_member(tmp_path / "member.ckpt")
    with torch.inference_mode():
        np.testing.assert_array_equal(reloaded(images).numpy(), expected.numpy())
    assert reloaded.hparams.image_size == 64 and reloaded.hparams.backbone == "resnet50"


def test_pretrained_offline_warns_once_and_starts_from_random_weights() -> None:
    with pytest.warns(PretrainedWeightsWarning, match="resnet50: ImageNet weights are not on this machine") as seen:
        net = create_backbone("resnet50", pretrained=True, pretrained_path=None, in_chans=1)
    assert len([w for w in seen if w.category is PretrainedWeightsWarning]) == 1
    assert net.conv1.in_channels == 1 and net.fc.out_features == 1


def test_pretrained_path_loads_local_weights(tmp_path: Path) -> None:
    source = timm.create_model("resnet50", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "weights.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PretrainedWeightsWarning)
        net = create_backbone("resnet50", pretrained=True, pretrained_path=str(tmp_path / "weights.pth"), in_chans=1)
    torch.testing.assert_close(net.layer2[0].conv1.weight, source.layer2[0].conv1.weight)
    torch.testing.assert_close(net.conv1.weight, source.conv1.weight.sum(dim=1, keepdim=True))  # RGB stem folded
    with pytest.raises(FileNotFoundError, match="missing.pth: pretrained_path does not exist"):
        create_backbone("resnet50", pretrained=True, pretrained_path=str(tmp_path / "missing.pth"), in_chans=1)


def test_balance_options(prepared_dir: Path) -> None:
    loss = RadiographDataModule(str(prepared_dir), image_size=64, balance="loss")
    positives = loss.train_rows.abnormal.sum()
    assert loss.pos_weight == pytest.approx((len(loss.train_rows) - positives) / positives)
    sampler = RadiographDataModule(str(prepared_dir), image_size=64, balance="sampler", num_workers=0)
    assert sampler.pos_weight is None
    assert sampler.train_dataloader().sampler.__class__.__name__ == "WeightedRandomSampler"
    with pytest.raises(ValueError, match="balance must be one of"):
        RadiographDataModule(str(prepared_dir), balance="smote")
