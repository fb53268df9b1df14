"""Predicting the activity in photos with a trained model: the same image pipeline for every caller.

A photo becomes the model's views (harapp.ml.views): the whole photo, the square around its main person
(a box the user drew, else the largest annotated box, else the largest person the pose model finds) and that
person's pose. The model gives calibrated probabilities. The network itself runs through a `Runner`, so a
checkpoint (torch) and an ONNX export (onnxruntime) share everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from PIL import Image

from harapp.core.types import Box, StoredPrediction
from harapp.ml.checkpoint import Checkpoint, load_checkpoint, restore_model
from harapp.ml.data import decode_side, eval_transform, view_images
from harapp.ml.device import autocast, resolve_device
from harapp.ml.images import load_image
from harapp.ml.models import Preprocess
from harapp.ml.people import PersonInput, PersonSource, person_input
from harapp.ml.pose import pose_features
from harapp.ml.views import View, describe_views

ImageInput = Image.Image | Path | str
Runner = Callable[[dict[str, torch.Tensor]], torch.Tensor]
"""Batched views (name -> tensor) -> calibrated class probabilities (batch x classes) on the CPU."""


@dataclass(frozen=True)
class Prediction:
    source: str  # the path, or "<image>" for an in-memory image
    class_names: tuple[str, ...]
    probabilities: tuple[float, ...]
    top_class: str
    top_probability: float
    latency_ms: float
    """This photo's own time: reading and preparing it, plus its share of the batched model call."""
    person_box: Box | None = None
    """The box the person and pose views used (photo pixels); None: the whole photo only."""
    person_source: PersonSource = "none"
    pose_found: bool = False
    views: tuple[View, ...] = ("whole",)
    image_size: tuple[int, int] = field(default=(0, 0))
    """Width and height of the photo as the model saw it (after EXIF rotation): the box's frame."""

    def sorted(self) -> list[tuple[str, float]]:
        return sorted(zip(self.class_names, self.probabilities, strict=True), key=lambda kv: -kv[1])

    def stored(self) -> StoredPrediction:
        """The prediction as the project stores it for the gallery."""
        probabilities = dict(zip(self.class_names, self.probabilities, strict=True))
        return StoredPrediction(self.top_class, self.top_probability, probabilities)

    def person_note(self) -> str:
        """What the model looked at, in words, for the Predict panel and the CLI."""
        if "person" not in self.views and "pose" not in self.views:
            return "whole photo"
        return PersonInput(self.person_box, self.person_source, None).describe() + (
            "" if self.pose_found or "pose" not in self.views or self.person_box is None else ", no body pose found"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "top_class": self.top_class,
            "top_probability": self.top_probability,
            "probabilities": dict(zip(self.class_names, self.probabilities, strict=True)),
            "latency_ms": self.latency_ms,
            "person_box": list(self.person_box) if self.person_box is not None else None,
            "person_source": self.person_source,
            "pose_found": self.pose_found,
        }


@dataclass(frozen=True)
class ModelSpec:
    """What the image pipeline needs to know of a model, whatever runs it."""

    class_names: tuple[str, ...]
    preprocess: Preprocess
    views: tuple[View, ...]

    def describe(self) -> str:
        return describe_views(self.views)


@dataclass(frozen=True)
class _Prepared:
    source: str
    views: dict[str, torch.Tensor]
    person: PersonInput
    size: tuple[int, int]
    seconds: float


def torch_runner(model: torch.nn.Module, device: torch.device) -> Runner:
    @torch.no_grad()
    def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(device):
            probs = model.probabilities(**{k: v.to(device) for k, v in batch.items()})  # type: ignore[operator]
        return cast(torch.Tensor, probs).float().cpu()

    return run


class Predictor:
    max_batch = 32

    def __init__(
        self, spec: ModelSpec, runner: Runner, *, checkpoint: Checkpoint | None = None, detect: bool = True
    ) -> None:
        self.spec = spec
        self.run = runner
        self.checkpoint = checkpoint
        self.detect = detect
        self.transform = eval_transform(spec.preprocess)
        self.side = decode_side(spec.preprocess, spec.views)

    @classmethod
    def from_checkpoint(cls, path: Path | str | Checkpoint, device: str = "auto", *, detect: bool = True) -> Predictor:
        checkpoint = path if isinstance(path, Checkpoint) else load_checkpoint(path)
        resolved = resolve_device(device)
        model = restore_model(checkpoint).to(resolved).eval()
        spec = ModelSpec(checkpoint.class_names, checkpoint.preprocess, checkpoint.config.views)
        return cls(spec, torch_runner(model, resolved), checkpoint=checkpoint, detect=detect)

    @classmethod
    def from_file(cls, path: Path | str, device: str = "auto", *, detect: bool = True) -> Predictor:
        """A checkpoint, or an ONNX file written by `harapp export-model`."""
        if str(path).lower().endswith(".onnx"):
            from harapp.ml.onnx_export import onnx_predictor

            return onnx_predictor(Path(path), detect=detect)
        return cls.from_checkpoint(path, device, detect=detect)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def views(self) -> tuple[View, ...]:
        return self.spec.views

    def prepare_image(self, img: Image.Image, person: PersonInput) -> dict[str, torch.Tensor]:
        """The model's input tensors (no batch dimension) for one photo and its person."""
        tensors = {name: self.transform(view) for name, view in view_images(img, self.views, person).items()}
        if "pose" in self.views:
            pose = person.pose if person.pose is not None else pose_features(None)
            tensors["pose"] = torch.from_numpy(pose.copy())
        return tensors

    def _prepare(
        self, x: ImageInput, boxes: Sequence[Box], user_box: Box | None, detected: Sequence[Box] | None = None
    ) -> _Prepared:
        start = time.perf_counter()
        if isinstance(x, Image.Image):
            source, img = "<image>", x.convert("RGB")
        else:
            source, img = str(x), load_image(x, min_side=self.side)
        person = person_input(img, self.views, boxes, user_box=user_box, detect=self.detect, detected=detected)
        tensors = self.prepare_image(img, person)
        return _Prepared(source, tensors, person, img.size, time.perf_counter() - start)

    def predict(
        self,
        x: ImageInput | Sequence[ImageInput],
        boxes: Sequence[tuple[Box, ...]] | tuple[Box, ...] | None = None,
        *,
        user_box: Box | None = None,
        detected: Sequence[Box] | None = None,
    ) -> Prediction | list[Prediction]:
        """One input gives one Prediction, a list gives a list. boxes: the annotated person boxes of each
        photo (the largest is its main person); user_box: the person a user pointed at in a single photo;
        detected: the pose model's boxes of a single photo, when the caller has found them already."""
        if isinstance(x, (list, tuple)):
            per_image = cast("Sequence[tuple[Box, ...]] | None", boxes)
            box_list: list[tuple[Box, ...]] = list(per_image) if per_image is not None else [()] * len(x)
            return self.predict_batch(list(x), box_list)
        one_image = cast("tuple[Box, ...] | None", boxes)
        if detected is not None and user_box is None and not one_image:
            prepared = self._prepare(cast(ImageInput, x), (), None, detected)
            return self._finish([prepared])[0]
        return self.predict_batch([cast(ImageInput, x)], [tuple(one_image or ())], [user_box])[0]

    def predict_people(self, x: ImageInput, boxes: Sequence[Box]) -> list[Prediction]:
        """One prediction per person box of one photo (decoded once), in the order given."""
        if isinstance(x, Image.Image):
            source, img = "<image>", x.convert("RGB")
        else:
            source, img = str(x), load_image(x)
        return self.predict_batch([img] * len(boxes), [()] * len(boxes), list(boxes), sources=[source] * len(boxes))

    def predict_batch(
        self,
        inputs: list[ImageInput],
        boxes: list[tuple[Box, ...]] | None = None,
        user_boxes: list[Box | None] | None = None,
        *,
        sources: list[str] | None = None,
    ) -> list[Prediction]:
        if not inputs:
            return []
        boxes = boxes or [()] * len(inputs)
        user_boxes = user_boxes or [None] * len(inputs)
        if len(inputs) > self.max_batch:  # bounded memory for a folder of thousands of photos
            out: list[Prediction] = []
            for i in range(0, len(inputs), self.max_batch):
                part = slice(i, i + self.max_batch)
                out += self.predict_batch(
                    inputs[part], boxes[part], user_boxes[part], sources=sources[part] if sources else None
                )
            return out
        prepared = [self._prepare(x, b, u) for x, b, u in zip(inputs, boxes, user_boxes, strict=True)]
        return self._finish(prepared, sources)

    def _finish(self, prepared: list[_Prepared], sources: list[str] | None = None) -> list[Prediction]:
        start = time.perf_counter()
        batch = {name: torch.stack([p.views[name] for p in prepared]) for name in prepared[0].views}
        probs = self.run(batch)
        model_share = (time.perf_counter() - start) / len(prepared)
        names = self.class_names
        out = []
        for n, (p, row) in enumerate(zip(prepared, probs, strict=True)):
            values = tuple(float(v) for v in row)
            top = int(row.argmax())
            out.append(
                Prediction(
                    sources[n] if sources else p.source, names, values, names[top], values[top],
                    (p.seconds + model_share) * 1000, p.person.box, p.person.source, p.person.pose_found, self.views,
                    p.size,
                )
            )  # fmt: skip
        return out
