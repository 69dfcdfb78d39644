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


PROXY_SCRIPT = """
import json, socket, warnings
import httpx2
import huggingface_hub
from dernet.ensemble.backbones import PretrainedWeightsWarning, create_backbone

def no_direct_connection(*args, **kwargs):  # behind a proxy: only the proxy is reachable
    raise OSError("direct connections are blocked")
socket.create_connection = no_direct_connection

requests = []
def hub(request):
    requests.append(str(request.url))
    return httpx2.Response(404, request=request)  # the mirror lacks the file

client = huggingface_hub.utils._http.default_client_factory()  # what huggingface_hub would use, proxies included
huggingface_hub.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub), follow_redirects=True))
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    net = create_backbone("resnet18", pretrained=True, pretrained_path=None, in_chans=1)
proxied = [str(pattern.pattern) for pattern in client._mounts]  # httpx2 mounts one proxy transport per scheme
print(json.dumps({"requests": requests, "proxied": proxied, "fc": net.fc.out_features,
                  "warnings": [str(w.message) for w in seen if w.category is PretrainedWeightsWarning]}))
"""


def test_a_proxy_environment_reaches_the_download_path(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HTTPS_PROXY="http://proxy.hospital.example:3128", HF_ENDPOINT="https://hub-mirror.hospital.example",
               HF_HOME=str(tmp_path / "hf"), TORCH_HOME=str(tmp_path / "torch"), HF_HUB_ETAG_TIMEOUT="2")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROXY_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["requests"], "the download was never attempted"
    assert all(url.startswith("https://hub-mirror.hospital.example/") for url in result["requests"])  # HF_ENDPOINT
    assert any("/timm/resnet18" in url for url in result["requests"])
    assert any("https" in pattern for pattern in result["proxied"])  # the proxy of the environment is used
    assert len(result["warnings"]) == 1 and "could not be downloaded" in result["warnings"][0]
    assert result["fc"] == 1


def test_validation_with_one_class_has_no_auroc_and_warns() -> None:
    from torch.utils.data import DataLoader, TensorDataset

    model = MemberClassifier(backbone="resnet18", image_size=32, pretrained=False)
    normal_only = TensorDataset(torch.rand(6, 1, 32, 32), torch.zeros(6))
    with pytest.warns(UserWarning, match="validation saw 0 abnormal and 6 normal images: no AUROC"):
        metrics = _trainer().validate(model, DataLoader(normal_only, batch_size=6), verbose=False)[0]
    assert np.isnan(metrics["val_auroc"])  # ModelCheckpoint ranks NaN last: it never picks this epoch
    both = TensorDataset(torch.rand(6, 1, 32, 32), torch.tensor([0.0, 1.0] * 3))
    metrics = _trainer().validate(model, DataLoader(both, batch_size=6), verbose=False)[0]
    assert 0.0 <= metrics["val_auroc"] <= 1.0
