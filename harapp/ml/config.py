"""The one frozen configuration object a training job carries, plus the errors the ml layer raises."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harapp.core.errors import HarappError

KINDS: tuple[str, ...] = ("cnn-scratch", "resnet18", "resnet50", "efficientnet-lite0", "clip")
MODES: tuple[str, ...] = ("scratch", "zero-shot", "linear-probe", "fine-tune")

# Which training modes make sense for which model kind; anything else is a config error, said up front
# rather than discovered after minutes of embedding.
ALLOWED_MODES: dict[str, tuple[str, ...]] = {
    "cnn-scratch": ("scratch",),
    "resnet18": ("scratch", "linear-probe", "fine-tune"),
    "resnet50": ("scratch", "linear-probe", "fine-tune"),
    "efficientnet-lite0": ("scratch", "linear-probe", "fine-tune"),
    "clip": ("zero-shot", "linear-probe", "fine-tune"),
}

DEFAULT_PROMPTS: tuple[str, ...] = (
    "a photo of a person {}.",
    "a photo of someone {}.",
    "a photo of a man {}.",
    "a photo of a woman {}.",
    "a person who is {}.",
    "a blurry photo of a person {}.",
    "a cropped photo of a person {}.",
)


class ConfigError(HarappError):
    """A TrainConfig value is out of range or a kind/mode pair is unsupported."""


class WeightsUnavailableError(HarappError):
    """Pretrained weights are not on disk and cannot be downloaded."""


class OutOfMemoryError(HarappError):
    """The accelerator ran out of memory; the message suggests a smaller batch."""


class TrainingCancelled(Exception):  # noqa: N818 - name fixed by the API contract
    """Raised inside the training loop when the cancel event is set; never escapes train()."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training job needs. linear-probe fits its head by L-BFGS to convergence, so epochs, lr
    and early_stopping_patience apply to scratch and fine-tune only. For CLIP, clip_pretrained also picks the
    architecture variant (QuickGELU for 'openai') that a local weights_path file is loaded into."""

    model_kind: str = "efficientnet-lite0"
    mode: str = "linear-probe"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 1
    image_size: int = 224
    device: str = "auto"
    balanced_loss: bool = True
    augment: bool = True
    early_stopping_patience: int = 3
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    weights_path: str | None = None
    finetune_last_blocks: int | None = None
    prompts: tuple[str, ...] | None = None
    person_crop: bool = False
    pretrained: bool = True
    loader_workers: int | None = None
    """Processes decoding images; None: none on the CPU (they would compete with the model), several on a GPU."""

    def validate(self) -> TrainConfig:
        if self.model_kind not in KINDS:
            raise ConfigError(f"Unknown model kind {self.model_kind!r}; choose one of {', '.join(KINDS)}.")
        allowed = ALLOWED_MODES[self.model_kind]
        if self.mode not in allowed:
            raise ConfigError(
                f"Mode {self.mode!r} is not available for {self.model_kind}; use one of {', '.join(allowed)}."
            )
        if self.epochs < 1 and self.mode != "zero-shot":
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}.")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}.")
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError("val_fraction and test_fraction must lie in [0, 1).")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ConfigError("val_fraction + test_fraction leaves too little data to train on.")
        if self.folds < 1:
            raise ConfigError(f"folds must be at least 1, got {self.folds}.")
        if self.image_size < 16:
            raise ConfigError(f"image_size must be at least 16 pixels, got {self.image_size}.")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ConfigError(f"loader_workers must be 0 or more, got {self.loader_workers}.")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}.")
        if self.prompts is not None and not all("{}" in p for p in self.prompts):
            raise ConfigError("Every prompt template must contain '{}' where the class name goes.")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["prompts"] is not None:
            d["prompts"] = list(d["prompts"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if values.get("prompts") is not None:
            values["prompts"] = tuple(values["prompts"])
        return cls(**values)

    def prompt_templates(self) -> tuple[str, ...]:
        return self.prompts if self.prompts else DEFAULT_PROMPTS
