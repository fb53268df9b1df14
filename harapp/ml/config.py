"""The one frozen configuration object a training job carries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from harapp.ml.errors import ConfigError
from harapp.ml.kinds import DEFAULT_KIND, KINDS, Mode, get_kind
from harapp.ml.views import DEFAULT_VIEWS, View, check_views, legacy_views

DEFAULT_PROMPTS: tuple[str, ...] = (
    "a photo of a person {}.",
    "a photo of someone {}.",
    "a photo of a man {}.",
    "a photo of a woman {}.",
    "a person who is {}.",
    "a blurry photo of a person {}.",
    "a cropped photo of a person {}.",
)


# TrainConfig() is the registry's default job: the default kind in its default mode.
_DEFAULT_KIND = KINDS[DEFAULT_KIND]
_DEFAULTS = _DEFAULT_KIND.defaults[_DEFAULT_KIND.default_mode]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training job needs. linear-probe fits its head by L-BFGS to convergence, so epochs, lr
    and early_stopping_patience apply to scratch and fine-tune only. For CLIP, clip_pretrained also picks the
    architecture variant (QuickGELU for 'openai') that a local weights_path file is loaded into."""

    model_kind: str = DEFAULT_KIND
    mode: Mode = _DEFAULT_KIND.default_mode
    epochs: int = _DEFAULTS.epochs
    batch_size: int = _DEFAULTS.batch_size
    lr: float = _DEFAULTS.lr
    backbone_lr_scale: float = 0.1
    weight_decay: float = 1e-4
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 1
    image_size: int = 0
    """Side of the square a model reads, in pixels; 0 (the default): the kind's own size for the mode (kinds.py),
    so that a config built for another kind or mode does not inherit the default probe's size."""
    device: str = "auto"
    balanced_loss: bool = True
    augment: bool = True
    early_stopping_patience: int = 3
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "openai"
    weights_path: str | None = None
    finetune_last_blocks: int | None = None
    prompts: tuple[str, ...] | None = None
    views: tuple[View, ...] = DEFAULT_VIEWS
    """What the model sees of each photo: the whole photo, the square around its main person, that person's
    body pose (see harapp.ml.views)."""
    pretrained: bool = True
    loader_workers: int | None = None
    """Processes decoding images; None: none on the CPU (they would compete with the model), several on a GPU."""
    decoded_cache: bool = True
    """Decode each photo once into the project's decoded-image cache (`<project>.cache/`, bounded by settings.json's
    decoded_cache_gb) and read pixels from there; False decodes every photo on the fly in every epoch."""

    def __post_init__(self) -> None:
        if self.image_size == 0:
            spec = KINDS.get(self.model_kind)
            own = spec.defaults.get(self.mode) if spec is not None else None
            object.__setattr__(self, "image_size", own.image_size if own is not None else _DEFAULTS.image_size)

    @classmethod
    def for_kind(cls, kind: str = DEFAULT_KIND, mode: str | None = None, **fields: Any) -> TrainConfig:
        """The registry's defaults for a kind and mode (None: the kind's default mode), with ``fields`` on top."""
        spec = get_kind(kind)
        chosen = spec.default_mode if mode is None else spec.check_mode(mode)
        d = spec.defaults[chosen]
        base = {"model_kind": spec.name, "mode": chosen, "epochs": d.epochs, "batch_size": d.batch_size, "lr": d.lr}
        return cls(**{**base, "image_size": d.image_size, **fields})

    def validate(self) -> TrainConfig:
        get_kind(self.model_kind).check_mode(self.mode)
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
        check_views(self.views)
        if self.prompts is not None and not all("{}" in p for p in self.prompts):
            raise ConfigError("Every prompt template must contain '{}' where the class name goes.")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["prompts"] is not None:
            d["prompts"] = list(d["prompts"])
        d["views"] = list(self.views)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if values.get("prompts") is not None:
            values["prompts"] = tuple(values["prompts"])
        # Configs from before views existed saw one image: the whole photo, or its largest person.
        values["views"] = tuple(values["views"]) if "views" in values else legacy_views(bool(d.get("person_crop")))
        return cls(**values)

    def prompt_templates(self) -> tuple[str, ...]:
        return self.prompts if self.prompts else DEFAULT_PROMPTS
