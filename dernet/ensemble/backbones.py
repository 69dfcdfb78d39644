"""timm backbones for the ensemble members, with pretrained weights that never make anyone wait.

`pretrained: true` uses ImageNet weights from a given file, or from the local Hugging Face / torch hub cache.
Only when they are not on disk and the network answers within seconds does timm download them; otherwise one
warning, and the member starts from random weights.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import timm
import torch
from huggingface_hub import try_to_load_from_cache

from ..errors import MissingFileError

__all__ = ["PretrainedWeightsWarning", "create_backbone", "find_cached_weights"]

HUB_HOST = ("huggingface.co", 443)


class PretrainedWeightsWarning(UserWarning):
    """Pretrained weights were asked for but could not be had; the model starts from random weights."""


def create_backbone(name: str, pretrained: bool, pretrained_path: str | None, in_chans: int) -> torch.nn.Module:
    """A timm model with one output logit (normal vs abnormal)."""
    kwargs = dict(num_classes=1, in_chans=in_chans)
    if pretrained_path:
        path = Path(pretrained_path)
        if not path.is_file():
            raise MissingFileError(f"{path}: pretrained_path does not exist; fix the path or set it to null")
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)), **kwargs)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    cached = find_cached_weights(name)
    if cached is not None:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(cached)), **kwargs)
    if _offline() or not _hub_reachable():
        warnings.warn(
            f"{name}: ImageNet weights are not on this machine and cannot be downloaded; training from random "
            "weights (set pretrained_path to a local weights file to avoid this)",
            PretrainedWeightsWarning,
            stacklevel=2,
        )
        return timm.create_model(name, pretrained=False, **kwargs)
    return timm.create_model(name, pretrained=True, **kwargs)


def find_cached_weights(name: str) -> Path | None:
    """The model's default pretrained weights if already in the local HF or torch hub cache."""
    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if hub.is_file():
            return hub
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of timm's minute of retries on a machine without internet."""
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False
