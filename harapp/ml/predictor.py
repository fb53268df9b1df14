"""Predicting the activity in photos with a trained checkpoint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from PIL import Image

from harapp.core.types import Box, StoredPrediction
from harapp.ml.checkpoint import Checkpoint, load_checkpoint, restore_model
from harapp.ml.data import decode_side, eval_transform, prepare_image
from harapp.ml.device import autocast, resolve_device
from harapp.ml.images import load_image

ImageInput = Image.Image | Path | str


@dataclass(frozen=True)
class Prediction:
    source: str  # the path, or "<image>" for an in-memory image
    class_names: tuple[str, ...]
    probabilities: tuple[float, ...]
    top_class: str
    top_probability: float
    latency_ms: float
    """This image's decoding and preprocessing time plus its share of its batch's forward pass."""

    def sorted(self) -> list[tuple[str, float]]:
        return sorted(zip(self.class_names, self.probabilities, strict=True), key=lambda kv: -kv[1])

    def stored(self) -> StoredPrediction:
        """The prediction as the project stores it for the gallery."""
        probabilities = dict(zip(self.class_names, self.probabilities, strict=True))
        return StoredPrediction(self.top_class, self.top_probability, probabilities)

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "top_class": self.top_class,
            "top_probability": self.top_probability,
            "probabilities": dict(zip(self.class_names, self.probabilities, strict=True)),
            "latency_ms": self.latency_ms,
        }


class Predictor:
    max_batch = 32

    def __init__(self, checkpoint: Checkpoint, device: str = "auto") -> None:
        self.checkpoint = checkpoint
        self.device = resolve_device(device)
        self.model = restore_model(checkpoint).to(self.device).eval()
        self.transform = eval_transform(checkpoint.preprocess)
        self.person_crop = checkpoint.config.person_crop
        self.side = decode_side(checkpoint.preprocess, self.person_crop)

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: str = "auto") -> Predictor:
        return cls(load_checkpoint(path), device)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.checkpoint.class_names

    def _prepare(self, x: ImageInput, boxes: tuple[Box, ...]) -> tuple[str, torch.Tensor]:
        if isinstance(x, Image.Image):
            source, img = "<image>", x.convert("RGB")
        else:
            source, img = str(x), load_image(x, min_side=self.side)
        return source, self.transform(prepare_image(img, boxes, self.person_crop))

    @torch.no_grad()
    def _run(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        with autocast(self.device):
            logits = self.model(torch.stack(tensors).to(self.device))
        return logits.float().softmax(-1).cpu()

    def predict(
        self, x: ImageInput | Sequence[ImageInput], boxes: Sequence[tuple[Box, ...]] | tuple[Box, ...] | None = None
    ) -> Prediction | list[Prediction]:
        """One input gives one Prediction, a list gives a list; boxes are person boxes for person-crop models."""
        if isinstance(x, (list, tuple)):
            per_image = cast("Sequence[tuple[Box, ...]] | None", boxes)
            box_list: list[tuple[Box, ...]] = list(per_image) if per_image is not None else [()] * len(x)
            return self.predict_batch(list(x), box_list)
        one_image = cast("tuple[Box, ...] | None", boxes)
        return self.predict_batch([cast(ImageInput, x)], [tuple(one_image or ())])[0]

    def predict_batch(self, inputs: list[ImageInput], boxes: list[tuple[Box, ...]] | None = None) -> list[Prediction]:
        if not inputs:
            return []
        boxes = boxes or [()] * len(inputs)
        if len(inputs) > self.max_batch:  # bounded memory for a folder of thousands of photos
            out: list[Prediction] = []
            for i in range(0, len(inputs), self.max_batch):
                out += self.predict_batch(inputs[i : i + self.max_batch], boxes[i : i + self.max_batch])
            return out
        # Each image's latency: its own decoding and preprocessing, plus its share of the batch's forward pass.
        prepared: list[tuple[str, torch.Tensor]] = []
        prep_ms: list[float] = []
        for x, b in zip(inputs, boxes, strict=True):
            start = time.perf_counter()
            prepared.append(self._prepare(x, b))
            prep_ms.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        probs = self._run([t for _, t in prepared])
        forward_share = (time.perf_counter() - start) * 1000 / len(inputs)
        names = self.class_names
        out = []
        for (source, _), row, own_ms in zip(prepared, probs, prep_ms, strict=True):
            values = tuple(float(v) for v in row)
            top = int(row.argmax())
            out.append(Prediction(source, names, values, names[top], values[top], own_ms + forward_share))
        return out
