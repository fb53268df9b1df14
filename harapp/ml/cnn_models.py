"""Builders of the CNN kinds: the small from-scratch CNN, torchvision's ResNets and EfficientNet-Lite0."""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from harapp.ml import weights as W
from harapp.ml.config import TrainConfig
from harapp.ml.device import mps_available
from harapp.ml.kinds import FROZEN_BACKBONE_MODES, ModelKind
from harapp.ml.models import BuiltModel, DeferredBackbone, HarModel, Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The TF-Lite EfficientNet weights expect inputs scaled to [-1, 1]; with ImageNet mean/std the same skier
# photo scores 'ski' with 0.39 instead of 0.90.
HALF = (0.5, 0.5, 0.5)


def _feature_dim(kind: ModelKind) -> int:
    if kind.feature_dim is None:
        raise ValueError(f"model kind {kind.name} needs a feature_dim in the registry")
    return kind.feature_dim


def _uses_pretrained(config: TrainConfig) -> bool:
    return config.pretrained and config.mode != "scratch"


def _load_file_without(net: nn.Module, path: str, classifier_prefix: str) -> nn.Module:
    """Load a local weights file into `net` (returned), minus the original classifier, which the backbone here
    replaces."""
    source = W.load_state_dict_file(path)
    net.load_state_dict({k: v for k, v in source.items() if not k.startswith(classifier_prefix)}, strict=True)
    return net


class ScratchCNN(nn.Module):
    """The paper's from-scratch baseline, roughly: four conv/BN/ReLU/pool blocks, dropout, global pooling."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), dropout: float = 0.3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = 3
        for width in widths:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(torch.flatten(self.pool(self.features(x)), 1))


def build_scratch_cnn(
    kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    """backbone is ignored: the network is small, its own, and random."""
    net = ScratchCNN(widths=(32, 64, 128, _feature_dim(kind)))
    pre = Preprocess(config.image_size, HALF, HALF, "squash", 1.0, "bilinear")
    return BuiltModel(
        HarModel(kind, net, net.out_dim, len(class_names), normalize=False, views=config.views), pre, "random"
    )


def _resnet(kind: ModelKind, pretrained: bool) -> nn.Module:
    import torchvision.models as tvm

    net = tvm.get_model(kind.name, weights=None)
    if pretrained:
        net.load_state_dict(W.torchvision_state(kind.name, kind.pretrained_weights))
    net.fc = nn.Identity()
    return net


def build_resnet(
    kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    """A torchvision ResNet (the kind's name is torchvision's model name) without its ImageNet classifier."""
    use_pretrained = _uses_pretrained(config)
    weights_path = config.weights_path
    make: Callable[[], nn.Module]
    if use_pretrained and weights_path:
        make = lambda: _load_file_without(_resnet(kind, False), weights_path, "fc.")  # noqa: E731
        source = f"file:{weights_path}"
    else:
        make = lambda: _resnet(kind, use_pretrained)  # noqa: E731
        source = f"torchvision:{kind.name}" if use_pretrained else "random"
    pre = Preprocess(config.image_size, IMAGENET_MEAN, IMAGENET_STD, "squash", 1.0, "bilinear")
    return _built(kind, config, class_names, make, pre, source, backbone)


def _built(
    kind: ModelKind,
    config: TrainConfig,
    class_names: Sequence[str],
    make: Callable[[], nn.Module],
    pre: Preprocess,
    source: str,
    backbone: bool,
) -> BuiltModel:
    """The model with the backbone `make` builds, now or (backbone=False, pretrained weights) when it is needed.
    A random backbone is always built now: its vectors depend on the seed's draws, which must come in order."""
    deferred = not backbone and source != "random"
    net = DeferredBackbone() if deferred else make()
    model = HarModel(kind, net, _feature_dim(kind), len(class_names), normalize=False, views=config.views)
    return BuiltModel(model, pre, source, build_backbone=make if deferred else None)


_LITE0_STATE: dict[str, torch.Tensor] = {}


def _lite0_imagenet_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The packaged ImageNet weights in timm's layout, read and mapped once per process: after a correction,
    the app rebuilds this backbone a few times a second, and reading the file was a third of each build."""
    if not _LITE0_STATE:
        source = W.load_state_dict_file(W.efficientnet_lite0_file())
        _LITE0_STATE.update(W.map_state_in_order(source, net.state_dict(), "efficientnet-lite0"))
    return _LITE0_STATE


_FROZEN: dict[str, nn.Module] = {}
_FROZEN_LOCK = threading.Lock()


def _can_share_frozen() -> bool:
    """Sharing one module between models is safe only when nothing moves it: with a GPU, one user's
    model.to("cuda") would move the backbone under another user running on the CPU. Models only read a frozen
    backbone, so threads may use it side by side."""
    return not torch.cuda.is_available() and not mps_available()


def _frozen_lite0() -> nn.Module:
    """One shared pretrained backbone for the modes that never train it (linear probe) on a machine without a
    GPU: a retrain after a correction builds the model three times in a second, and timm's construction was a
    tenth of that. Locked: the app's warm-up and a label review may ask for it at the same moment, and each
    would otherwise build its own copy."""
    with _FROZEN_LOCK:
        if "lite0" not in _FROZEN:
            net = efficientnet_lite0_backbone(True, 0).eval()
            for param in net.parameters():
                param.requires_grad_(False)
            # One model's .train() must not switch the batch-norm layers every other model reads to updating
            # their statistics: this module stays in eval mode whatever its owner asks.
            object.__setattr__(net, "train", types.MethodType(_stays_in_eval, net))
            object.__setattr__(net, "shared_frozen", True)
            _FROZEN["lite0"] = net
        return _FROZEN["lite0"]


def warm_frozen_backbone() -> None:
    """Build the shared frozen backbone ahead of the first model that uses it (where it is shared)."""
    if _can_share_frozen():
        _frozen_lite0()


def _stays_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return module


def efficientnet_lite0_backbone(pretrained: bool, num_classes: int = 0) -> nn.Module:
    import timm

    net: Any = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=1000)  # has reset_classifier
    if pretrained:
        net.load_state_dict(_lite0_imagenet_state(net))
    if num_classes != 1000:
        net.reset_classifier(num_classes)
    return net


def efficientnet_lite0_preprocess(image_size: int = 224, resize_mode: str = "squash") -> Preprocess:
    # The whole frame, squashed: people are often near the edges, where ImageNet's centre crop cuts them off.
    # On the COCO photos this scores 0.657 (4 classes, 5-fold linear probe) against 0.639 for the crop.
    crop_pct = 0.875 if resize_mode == "center-crop" else 1.0
    return Preprocess(image_size, HALF, HALF, resize_mode, crop_pct, "bilinear")


def build_efficientnet_lite0(
    kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    use_pretrained = _uses_pretrained(config)
    weights_path = config.weights_path
    make: Callable[[], nn.Module]
    if use_pretrained and weights_path:
        make = lambda: _load_file_without(efficientnet_lite0_backbone(False, 0), weights_path, "classifier")  # noqa: E731
        source = f"file:{weights_path}"
    elif use_pretrained and config.mode in FROZEN_BACKBONE_MODES and _can_share_frozen():
        make, source = _frozen_lite0, W.EFFNET_LITE0_SOURCE
    else:
        make = lambda: efficientnet_lite0_backbone(use_pretrained, 0)  # noqa: E731
        source = W.EFFNET_LITE0_SOURCE if use_pretrained else "random"
    return _built(kind, config, class_names, make, efficientnet_lite0_preprocess(config.image_size), source, backbone)
