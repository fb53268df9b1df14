"""The model kinds harapp trains: one entry per kind holds every fact the app needs about it.

The GUI form, the CLI and the trainer read this registry; nothing else asks which kind it is holding. A new
kind is one entry in KINDS plus its builder. Builders are named as 'module:function' and imported only when a
model is built, so reading the registry (the Train form, `harapp train --help`) costs no torch import.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from harapp.ml.errors import ConfigError

if TYPE_CHECKING:
    from harapp.ml.config import TrainConfig
    from harapp.ml.models import BuiltModel

Mode = Literal["scratch", "zero-shot", "linear-probe", "fine-tune"]
MODES: tuple[Mode, ...] = get_args(Mode)
MODE_LABELS: Mapping[Mode, str] = {
    "scratch": "from scratch",
    "zero-shot": "zero-shot",
    "linear-probe": "linear probe",
    "fine-tune": "fine-tune",
}
FROZEN_BACKBONE_MODES: tuple[Mode, ...] = ("zero-shot", "linear-probe")
"""Modes that only read the backbone's features: they can be cached, and a checkpoint need not copy it."""


@dataclass(frozen=True)
class TrainDefaults:
    """The hyperparameters a job starts with when nobody chose them."""

    epochs: int
    batch_size: int
    lr: float
    image_size: int


# A frozen backbone with a small head tolerates a high rate and many epochs (each is fast on cached
# embeddings); fine-tuning pretrained weights needs a small rate; zero-shot trains nothing.
_MODE_HYPERPARAMETERS: Mapping[Mode, tuple[int, int, float]] = {
    "scratch": (20, 32, 1e-3),
    "zero-shot": (1, 32, 1e-3),
    "linear-probe": (10, 32, 1e-3),
    "fine-tune": (5, 16, 1e-4),
}


def standard_defaults(
    modes: Sequence[Mode], image_size: int, *, probe_image_size: int | None = None
) -> dict[Mode, TrainDefaults]:
    """Each mode's usual epochs, batch size and learning rate, at the kind's image size (a linear probe's at
    probe_image_size where given)."""
    return {
        mode: TrainDefaults(
            *_MODE_HYPERPARAMETERS[mode],
            probe_image_size if mode == "linear-probe" and probe_image_size is not None else image_size,
        )
        for mode in modes
    }


class Builder(Protocol):
    def __call__(
        self, kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool, backbone: bool
    ) -> BuiltModel: ...


@dataclass(frozen=True)
class ModelKind:
    name: str
    """The kind's id in configs, checkpoints, the CLI and checkpoint file names."""
    label: str
    """How the GUI names it."""
    modes: tuple[Mode, ...]
    """The training modes that make sense for it; anything else is refused before any work starts."""
    default_mode: Mode
    defaults: Mapping[Mode, TrainDefaults]
    """Per mode: epochs, batch size, learning rate and image size."""
    builder: str
    """'module:function' of its Builder."""
    feature_dim: int | None
    """Length of the backbone's feature vector; None where the architecture variant decides (CLIP)."""
    block_pattern: str
    """Regex on backbone parameter names whose group 1 numbers the block, for fine-tuning the last N blocks."""
    stem_layers: tuple[str, ...] = ()
    """Top-level backbone layers before the first block (they train last, with every block)."""
    pretrained_weights: str = ""
    """The builder's name for its pretrained weights (torchvision: the weights enum, e.g. 'ResNet18_Weights.X')."""
    own_image_size: bool = False
    """The model runs at its architecture's own input size, whatever the form's image size says (CLIP)."""
    prompt_head: bool = False
    """The head starts as a zero-shot classifier made from class prompts: prompts apply, zero-shot needs no
    training, and a linear probe or fine-tune starts from that head as it is."""

    def __post_init__(self) -> None:
        if self.default_mode not in self.modes or set(self.defaults) != set(self.modes):
            raise ValueError(f"model kind {self.name}: its default mode and defaults must match its modes")
        if "zero-shot" in self.modes and not self.prompt_head:
            raise ValueError(f"model kind {self.name}: zero-shot needs a prompt head")

    @property
    def image_size(self) -> int:
        return self.defaults[self.default_mode].image_size

    def defaults_for(self, mode: str) -> TrainDefaults:
        return self.defaults[self.check_mode(mode)]

    def check_mode(self, mode: str) -> Mode:
        """The mode, if this kind allows it; a ConfigError naming the allowed ones otherwise."""
        for allowed in self.modes:
            if allowed == mode:
                return allowed
        raise ConfigError(f"Mode {mode!r} is not available for {self.name}; use one of {', '.join(self.modes)}.")

    def load_builder(self) -> Builder:
        module, _, function = self.builder.partition(":")
        builder: Builder = getattr(importlib.import_module(module), function)
        return builder


_CNN_MODES: tuple[Mode, ...] = ("scratch", "linear-probe", "fine-tune")
_CLIP_MODES: tuple[Mode, ...] = ("zero-shot", "linear-probe", "fine-tune")


def _registry(*kinds: ModelKind) -> dict[str, ModelKind]:
    return {kind.name: kind for kind in kinds}


def _torchvision_resnet(name: str, label: str, feature_dim: int, weights: str) -> ModelKind:
    """A torchvision ResNet: `name` is torchvision's model name, `weights` its ImageNet weights enum."""
    return ModelKind(
        name=name,
        label=label,
        modes=_CNN_MODES,
        default_mode="linear-probe",
        defaults=standard_defaults(_CNN_MODES, image_size=224),
        builder="harapp.ml.cnn_models:build_resnet",
        feature_dim=feature_dim,
        block_pattern=r"^layer(\d+)\.",
        stem_layers=("conv1", "bn1"),
        pretrained_weights=weights,
    )


KINDS: Mapping[str, ModelKind] = _registry(
    ModelKind(
        name="cnn-scratch",
        label="Small CNN",
        modes=("scratch",),
        default_mode="scratch",
        # A CNN trained from scratch on a CPU is only usable at small sizes.
        defaults=standard_defaults(("scratch",), image_size=96),
        builder="harapp.ml.cnn_models:build_scratch_cnn",
        feature_dim=256,
        block_pattern=r"^features\.(\d+)\.",
    ),
    _torchvision_resnet("resnet18", "ResNet-18", 512, "ResNet18_Weights.IMAGENET1K_V1"),
    _torchvision_resnet("resnet50", "ResNet-50", 2048, "ResNet50_Weights.IMAGENET1K_V2"),
    ModelKind(
        name="efficientnet-lite0",
        label="EfficientNet-Lite0",
        modes=_CNN_MODES,
        default_mode="linear-probe",
        # A frozen backbone's features describe a photo best a little above the size it was trained at (the
        # train/test resolution discrepancy, Touvron et al. 2019). Linear probes on the coco-har photos, mean of
        # three CV seeds: 224 px 0.716, 256 px 0.723, 288 px 0.727, 320 px 0.711 (4 classes); 288 px also
        # ranked wrong labels better (bench/README.md). Training the network itself stays at 224 px.
        defaults=standard_defaults(_CNN_MODES, image_size=224, probe_image_size=288),
        builder="harapp.ml.cnn_models:build_efficientnet_lite0",
        feature_dim=1280,
        block_pattern=r"^blocks\.(\d+)\.",
        stem_layers=("conv_stem", "bn1"),
    ),
    ModelKind(
        name="clip",
        label="CLIP ViT-B/32",
        modes=_CLIP_MODES,
        default_mode="linear-probe",
        # The image size is the open_clip model's own; this one only fills the form.
        defaults=standard_defaults(_CLIP_MODES, image_size=224),
        builder="harapp.ml.clip_models:build_clip",
        feature_dim=None,
        block_pattern=r"^transformer\.resblocks\.(\d+)\.",
        stem_layers=("conv1", "class_embedding", "positional_embedding", "ln_pre"),
        own_image_size=True,
        prompt_head=True,
    ),
)
DEFAULT_KIND = "efficientnet-lite0"
"""The kind a job trains when nobody chose one: pretrained weights ship with harapp, and it is fast on a CPU."""


def get_kind(name: str) -> ModelKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(f"Unknown model kind {name!r}; choose one of {', '.join(KINDS)}.") from None


def kind_label(name: str) -> str:
    """How the GUI names a kind; the name itself for a kind this harapp does not know (an old checkpoint)."""
    kind = KINDS.get(name)
    return kind.label if kind is not None else name


def mode_label(name: str) -> str:
    for mode, label in MODE_LABELS.items():
        if mode == name:
            return label
    return name
