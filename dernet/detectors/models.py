"""torchvision detection models for the 7 lesion classes, with pretrained weights that never make anyone wait.

Label 0 is torchvision's background (Faster R-CNN) and is never a target (RetinaNet), so lesion class k is label
k + 1 in both: one decoding for both in the gate (:func:`dernet.deploy.detection.decode_torchvision`).

``pretrained``: ``coco`` (the whole detector, COCO-trained, its class head replaced: the papers' start), ``imagenet``
(the backbone only) or null. Weights already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or given by
``pretrained_path`` are used from disk; otherwise torchvision downloads them, and if that fails (offline,
unreachable) one warning and random weights.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights
from torchvision.models.detection import (
    FasterRCNN,
    FasterRCNN_ResNet50_FPN_V2_Weights,
    FasterRCNN_ResNet50_FPN_Weights,
    RetinaNet,
    RetinaNet_ResNet50_FPN_V2_Weights,
    RetinaNet_ResNet50_FPN_Weights,
    fasterrcnn_resnet50_fpn,
    fasterrcnn_resnet50_fpn_v2,
    retinanet_resnet50_fpn,
    retinanet_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
from torchvision.models.detection.retinanet import RetinaNetClassificationHead, RetinaNetHead
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool, LastLevelP6P7

from ..classes import CLASS_NAMES
from ..config import ConfigError, check_choice
from ..ensemble.backbones import DOWNLOAD_ERRORS, PretrainedWeightsWarning
from ..errors import MissingFileError

__all__ = ["ARCHITECTURES", "BACKBONES", "PRETRAINED", "build_detector"]

ARCHITECTURES = ("faster_rcnn", "faster_rcnn_v2", "retinanet", "retinanet_v2")
BACKBONES = ("resnet50", "resnet34", "resnet18")
PRETRAINED = ("coco", "imagenet", None)
NUM_LABELS = len(CLASS_NAMES) + 1  # background / unused label 0, then the 7 lesion classes
# torchvision's builders for a ResNet-50 FPN (the papers' models) and their COCO weights.
RESNET50_BUILDERS = {
    "faster_rcnn": (fasterrcnn_resnet50_fpn, FasterRCNN_ResNet50_FPN_Weights.COCO_V1),
    "faster_rcnn_v2": (fasterrcnn_resnet50_fpn_v2, FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1),
    "retinanet": (retinanet_resnet50_fpn, RetinaNet_ResNet50_FPN_Weights.COCO_V1),
    "retinanet_v2": (retinanet_resnet50_fpn_v2, RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1),
}
IMAGENET = {"resnet50": ResNet50_Weights.IMAGENET1K_V1, "resnet34": ResNet34_Weights.IMAGENET1K_V1,
            "resnet18": ResNet18_Weights.IMAGENET1K_V1}  # fmt: skip


def build_detector(
    arch: str,
    backbone: str,
    imgsz: int,
    train_sizes: tuple[int, ...] = (),
    pretrained: str | None = None,
    pretrained_path: str | None = None,
    trainable_backbone_layers: int = 3,
    anchor_sizes: tuple[int, ...] | None = None,
    fpn_channels: int = 256,
    **head_options: int,
) -> nn.Module:
    """A torchvision detector for [3, imgsz, imgsz] canvases, 8 labels (0 unused), scoring every box >= 0.001.

    ``train_sizes``: square sizes drawn per batch in training (multi-scale; torchvision's transform rescales the
    canvas); evaluation and export run at ``imgsz``. ``anchor_sizes``: the anchor size of each of the 5 FPN levels
    (None: torchvision's 32-512 px; lesions under about 20 px of the canvas need smaller ones). ``fpn_channels``: the
    pyramid's width (torchvision's 256; narrower, for ResNet-18/34 only, cuts a CPU step about 3x). ``head_options``:
    torchvision's own keyword arguments (rpn_post_nms_top_n_train, box_batch_size_per_image, ...), unchanged.
    """
    check_choice("arch", arch, ARCHITECTURES)
    check_choice("backbone", backbone, BACKBONES)
    check_choice("pretrained", pretrained, PRETRAINED)
    if backbone != "resnet50" and pretrained == "coco":
        raise ConfigError(
            f"backbone {backbone}: torchvision has COCO detector weights for resnet50 only; use resnet50, or "
            "pretrained: imagenet / null"
        )
    if fpn_channels != 256 and backbone == "resnet50":
        raise ConfigError(f"fpn_channels {fpn_channels}: torchvision's ResNet-50 detectors are 256 wide; use 256")
    if any(size > imgsz for size in train_sizes):
        raise ConfigError(
            f"train_sizes {list(train_sizes)}: each must be at most imgsz {imgsz} (a larger one only upsamples the "
            "canvas); raise imgsz (and the cache's long side) instead"
        )
    sizes = tuple(s for s in train_sizes if s != imgsz) + (imgsz,)  # the last one is the size evaluation uses
    score = {"box_score_thresh": 0.001} if arch.startswith("faster_rcnn") else {"score_thresh": 0.001}
    options = dict(min_size=sizes, max_size=max(sizes), **score, **head_options)
    options["box_detections_per_img" if arch.startswith("faster_rcnn") else "detections_per_img"] = 300
    if anchor_sizes is not None:
        options.update(_anchors(arch, tuple(anchor_sizes)))
    if backbone == "resnet50":
        model = _resnet50_detector(arch, pretrained, pretrained_path, trainable_backbone_layers, options)
    else:
        model = _small_detector(arch, backbone, pretrained, trainable_backbone_layers, fpn_channels, options)
    if pretrained_path and backbone != "resnet50":
        _load_state(model, pretrained_path)
    return model


def _resnet50_detector(arch: str, pretrained: str | None, path: str | None, trainable: int, options: dict) -> nn.Module:
    builder, coco = RESNET50_BUILDERS[arch]
    if path:
        model = builder(weights=None, weights_backbone=None, num_classes=NUM_LABELS,
                        trainable_backbone_layers=trainable, **options)  # fmt: skip
        _load_state(model, path)
        return model
    if pretrained == "coco":
        model = _with_weights(
            lambda w: builder(weights=w, weights_backbone=None, trainable_backbone_layers=trainable, **options),
            lambda: builder(weights=None, weights_backbone=None, trainable_backbone_layers=trainable, **options),
            coco,
            f"{arch} COCO weights",
        )
        return _replace_class_head(model)
    backbone = IMAGENET["resnet50"] if pretrained == "imagenet" else None
    return _with_weights(
        lambda w: builder(weights=None, weights_backbone=w, num_classes=NUM_LABELS,
                          trainable_backbone_layers=trainable, **options),  # fmt: skip
        lambda: builder(weights=None, weights_backbone=None, num_classes=NUM_LABELS,
                        trainable_backbone_layers=trainable, **options),  # fmt: skip
        backbone,
        "resnet50 ImageNet weights",
    )


def _small_detector(
    arch: str, backbone: str, pretrained: str | None, trainable: int, channels: int, options: dict
) -> nn.Module:
    """A ResNet-18/34 FPN detector (the MRI paper's RetinaNet; the demo's lighter models), ``channels`` wide.

    ``_v2`` builds torchvision's v2 design on it (normalised pyramid and heads, GIoU for RetinaNet), which is what
    lets a detector learn from random weights in few steps (He et al., Rethinking ImageNet Pre-training).
    """
    v2 = arch.endswith("_v2")
    options = dict(options)  # the v2 heads are added here, never to the caller's options

    def make(weights):
        # Frozen batch norm (resnet_fpn_backbone's default) keeps pretrained statistics; from random weights it is
        # the identity and training barely moves, so those train ordinary batch norm (as torchvision's R50 builders).
        norm = FrozenBatchNorm2d if weights is not None else nn.BatchNorm2d
        if arch.startswith("retinanet"):
            fpn = resnet_fpn_backbone(backbone_name=backbone, weights=weights, trainable_layers=trainable,
                                      returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256),
                                      norm_layer=norm)  # fmt: skip
            fpn = _narrowed(fpn, channels, LastLevelP6P7(channels, channels), None)
            if v2:
                options["head"] = _retinanet_v2_head(channels, options)
            return RetinaNet(fpn, NUM_LABELS, **options)
        fpn = resnet_fpn_backbone(backbone_name=backbone, weights=weights, trainable_layers=trainable, norm_layer=norm)
        fpn = _narrowed(fpn, channels, LastLevelMaxPool(), nn.BatchNorm2d if v2 else None)
        if v2:
            anchors = _anchors_per_location(options, "rpn_anchor_generator")
            options["rpn_head"] = RPNHead(channels, anchors, conv_depth=2)
            options["box_head"] = FastRCNNConvFCHead((channels, 7, 7), [channels] * 4, [1024], nn.BatchNorm2d)
        return FasterRCNN(fpn, NUM_LABELS, **options)

    if pretrained != "imagenet":
        return make(None)
    return _with_weights(make, lambda: make(None), IMAGENET[backbone], f"{backbone} ImageNet weights")


def _retinanet_v2_head(channels: int, options: dict) -> RetinaNetHead:
    """torchvision's RetinaNet v2 head (group norm, GIoU box loss) at ``channels``."""
    head = RetinaNetHead(channels, _anchors_per_location(options, "anchor_generator"), NUM_LABELS,
                         norm_layer=partial(nn.GroupNorm, 32))  # fmt: skip
    head.regression_head._loss_type = "giou"  # as torchvision's retinanet_resnet50_fpn_v2 sets it
    return head


def _anchors_per_location(options: dict, key: str) -> int:
    """Anchors per feature-map location: ours (anchor_sizes) or torchvision's default (3 for Faster R-CNN's RPN,
    9 for RetinaNet)."""
    if key in options:
        return options[key].num_anchors_per_location()[0]
    return 3 if key == "rpn_anchor_generator" else 9


def _narrowed(fpn: BackboneWithFPN, channels: int, extra_blocks: nn.Module, norm: type | None) -> BackboneWithFPN:
    """``fpn`` with its pyramid ``channels`` wide and normalised by ``norm``: resnet_fpn_backbone (which freezes the
    stages we asked for) always builds a plain 256-wide one, so another replaces its FPN on the same ResNet stages."""
    if channels == fpn.out_channels and norm is None:
        return fpn
    widths = [block[0].in_channels for block in fpn.fpn.inner_blocks]
    fpn.fpn = FeaturePyramidNetwork(widths, channels, extra_blocks=extra_blocks, norm_layer=norm)
    fpn.out_channels = channels
    return fpn


def _anchors(arch: str, sizes: tuple[int, ...]) -> dict[str, AnchorGenerator]:
    """torchvision's anchor layout at other sizes: 3 ratios per level (Faster R-CNN), 3 ratios x 3 octave scales
    (RetinaNet); the same number per location as the defaults, so COCO heads still fit."""
    if len(sizes) != 5:
        raise ConfigError(
            f"anchor_sizes {list(sizes)}: give one size per FPN level, 5 in all (e.g. [16, 32, 64, 128, 256])"
        )
    ratios = ((0.5, 1.0, 2.0),) * 5
    if arch.startswith("faster_rcnn"):
        return {"rpn_anchor_generator": AnchorGenerator(tuple((s,) for s in sizes), ratios)}
    octaves = tuple((s, s * 2 ** (1 / 3), s * 2 ** (2 / 3)) for s in sizes)
    return {"anchor_generator": AnchorGenerator(octaves, ratios)}


def _with_weights(build, build_random, weights, what: str) -> nn.Module:
    """``build(weights)``; torchvision reads them from the hub cache, else downloads; a failed download warns."""
    if weights is None:
        return build_random()
    try:
        return build(weights)
    except DOWNLOAD_ERRORS as err:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        warnings.warn(
            f"{what} are not on this machine ({cached}) and could not be downloaded ({type(err).__name__}); "
            "training from random weights (put the file there, or set pretrained_path, to avoid this)",
            PretrainedWeightsWarning,
            stacklevel=3,
        )
        return build_random()


def _replace_class_head(model: nn.Module) -> nn.Module:
    """COCO's 91-class head swapped for ours (8 labels); the rest of the COCO detector is kept."""
    if isinstance(model, FasterRCNN):
        in_features = model.roi_heads.box_predictor.cls_score.in_features
        model.roi_heads.box_predictor = FastRCNNPredictor(in_features, NUM_LABELS)
    else:
        first = model.head.classification_head.conv[0]  # conv, [GroupNorm (v2)], ReLU
        norm = partial(nn.GroupNorm, 32) if len(first) > 2 else None
        model.head.classification_head = RetinaNetClassificationHead(
            first[0].in_channels, model.anchor_generator.num_anchors_per_location()[0], NUM_LABELS, norm_layer=norm
        )
    return model


def _load_state(model: nn.Module, path: str) -> None:
    """A state dict (or a Lightning checkpoint holding one under ``model.``) for this detector: every backbone tensor
    must be there with its shape (the point of pretrained weights); head tensors of another shape (weights trained
    for other classes, COCO's 91, say) are left as initialized, with one warning naming how many."""
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: pretrained_path does not exist; fix the path or set it to null")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in state.get("state_dict", state).items()}
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    backbone = [k for k in own if k.startswith("backbone.")]
    absent = [k for k in backbone if k not in fitting]
    if absent:
        raise ConfigError(
            f"{path}: these weights do not fit this detector's backbone ({len(absent)} of {len(backbone)} tensors "
            f"missing or of another shape, e.g. {absent[0]}); give weights of the same arch and backbone"
        )
    model.load_state_dict(fitting, strict=False)
    left = [k for k in own if k not in fitting]
    if left:
        warnings.warn(
            f"{path}: {len(left)} head tensors do not fit (e.g. {left[0]}) and start from their initialization",
            PretrainedWeightsWarning,
            stacklevel=3,
        )
