"""Class-activation maps for one ensemble member, through the grad-cam package (pytorch-grad-cam).

The target layer is each backbone's last convolutional feature map before global pooling: there Grad-CAM's maps
are both class-specific and as fine as the network allows (stride 32).
"""

from __future__ import annotations

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus
from torch import nn

from ..ensemble.predict import normal_index
from ..errors import UsageError

__all__ = ["METHODS", "TARGET_LAYERS", "member_heatmap", "target_layer"]

METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "eigencam": EigenCAM}

# Backbone family (a substring of the timm name) -> the module, inside timm's model, that ends the feature extractor.
# timm's own feature_info is the fallback; it stops one block early for EfficientNets (before conv_head/bn2).
TARGET_LAYERS = {"densenet": "features.norm5", "efficientnet": "bn2", "resnet": "layer4",
                 "convnext": "stages.3"}  # ConvNeXt: its norm comes after pooling, in the head  # fmt: skip


def target_layer(net: nn.Module, backbone: str) -> nn.Module:
    """The module whose activations Grad-CAM weighs, for timm model ``net`` named ``backbone``."""
    for family, name in TARGET_LAYERS.items():
        if family in backbone:
            return net.get_submodule(name)
    feature_info = getattr(net, "feature_info", None)
    if not feature_info:
        raise UsageError(f"{backbone}: no known Grad-CAM target layer; add its family to TARGET_LAYERS")
    return net.get_submodule(feature_info[-1]["module"])


def member_heatmap(member: nn.Module, image: torch.Tensor, method: str = "gradcam") -> tuple[np.ndarray, float]:
    """Heatmap [H, W] in [0, 1] of where ``member`` sees 'abnormal' in ``image`` [1, 1, H, W], and P(abnormal).

    ``member`` is a :class:`dernet.ensemble.MemberClassifier`, binary (its one logit) or multiclass (the logit of
    1 - P(normal), as the exported vote uses); normalization is inside it.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    layer = target_layer(member.net, member.hparams.backbone)
    multiclass = member.hparams.task == "multiclass"
    normal = normal_index(member.hparams.classes, member.hparams.backbone) if multiclass else None

    def abnormal_logit(output: torch.Tensor) -> torch.Tensor:  # one image's output: a 0-d logit, or [K] logits
        if normal is None:
            return output.reshape(-1)[0]
        return torch.logsumexp(torch.cat([output[:normal], output[normal + 1 :]]), dim=0) - output[normal]

    with METHODS[method](model=member, target_layers=[layer]) as cam:
        maps = cam(input_tensor=image, targets=[abnormal_logit])
        logit = abnormal_logit(cam.outputs.detach()[0])
    heatmap = np.nan_to_num(np.asarray(maps[0], dtype=np.float32)).clip(0.0, 1.0)
    return heatmap, float(torch.sigmoid(logit))
