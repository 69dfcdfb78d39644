"""timm backbones for the ensemble members, with pretrained weights that never make anyone wait.

`pretrained: true` uses ImageNet weights from a given file, or from the local Hugging Face / torch hub cache. When they
are not on disk, timm downloads them through huggingface_hub, with its own switches: HF_HUB_OFFLINE, HF_ENDPOINT (a
mirror), HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT, and the HTTPS_PROXY / HTTP_PROXY of the environment. If that
fails (offline, unreachable, refused), one warning, and the member starts from random weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import timm
import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError

from ..config import ConfigError
from ..errors import MissingFileError

__all__ = ["PretrainedWeightsWarning", "create_backbone", "find_cached_weights"]

# What a failed download raises: huggingface_hub's offline, not-found and HTTP errors are OSErrors (or
# EntryNotFoundError); torch.hub's URL downloads raise URLError, an OSError too.
DOWNLOAD_ERRORS = (OSError, EntryNotFoundError)


class PretrainedWeightsWarning(UserWarning):
    """Pretrained weights were asked for but could not be had; the model starts from random weights."""


def create_backbone(
    name: str,
    pretrained: bool,
    pretrained_path: str | None,
    in_chans: int,
    outputs: int = 1,
    backbone_args: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """A timm model with ``outputs`` logits (one: normal vs abnormal; one per class for lesion types);
    ``backbone_args`` go to ``timm.create_model`` as they are (e.g. ``zero_init_last``, ``drop_path_rate``)."""
    try:
        net = _create(name, pretrained, pretrained_path, in_chans, outputs, backbone_args or {})
    except TypeError as err:  # timm passes unknown keywords on to the model class, which names the one it refused
        if not backbone_args:
            raise
        raise ConfigError(f"model.backbone_args {backbone_args}: {name} does not take one of them ({err})") from err
    return _zero_head(net)


def _zero_head(net: torch.nn.Module) -> torch.nn.Module:
    """Start the new classifier head at zero, so every member begins at p = 0.5 with a calm loss. timm scales
    EfficientNet's head init by its outputs: with one output it draws the weights from U(-1, 1), and from random
    weights that start diverged (a loss of 5 in the first epoch) and learned nothing on the demo's phantoms."""
    head = net.get_classifier()
    if isinstance(head, torch.nn.Linear):
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    return net


def _create(
    name: str, pretrained: bool, pretrained_path: str | None, in_chans: int, outputs: int, extra: dict[str, Any]
) -> torch.nn.Module:
    """The timm model from the weights asked for: a file, the local cache, a download, or random (with a warning)."""
    kwargs = dict(extra, num_classes=outputs, in_chans=in_chans)
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
    try:
        return timm.create_model(name, pretrained=True, **kwargs)
    except DOWNLOAD_ERRORS as err:
        warnings.warn(
            f"{name}: ImageNet weights are not on this machine and could not be downloaded ({type(err).__name__}); "
            "training from random weights (set pretrained_path to a local weights file to avoid this)",
            PretrainedWeightsWarning,
            stacklevel=2,
        )
        return timm.create_model(name, pretrained=False, **kwargs)


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
