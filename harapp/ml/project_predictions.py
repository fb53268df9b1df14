"""Predicting every image of a project with a trained model and storing the predictions: the one path behind
the gallery's badges, the confusion matrix and `harapp train`.

A model that is a head on frozen features (linear probe, zero-shot) reads its features from the project's
cache, so re-predicting a project after a retrain decodes no photo; other models read the photos in batches
(inside a training run, from its decoded-image cache where that has them: the labelled photos).
Either way the probabilities are the calibrated ones the Predict panel shows for the same photo.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from harapp.core.errors import ImageFileError
from harapp.core.types import LabelledItem, StoredPrediction
from harapp.ml.batches import image_batches
from harapp.ml.checkpoint import Checkpoint, load_checkpoint, restore_built
from harapp.ml.device import autocast, resolve_device
from harapp.ml.embeddings import cached_features
from harapp.ml.kinds import FROZEN_BACKBONE_MODES
from harapp.ml.models import BuiltModel, calibrated_probabilities
from harapp.ml.people import VectorStore, resolve_people
from harapp.ml.photo_views import PhotoViews
from harapp.ml.progress import Reporter, TrainProgress

CHUNK = 256
"""Images per step: bounds memory on a 100k-image project and lets a cancel land within seconds."""


class PredictionStore(VectorStore, Protocol):
    """What predicting a project needs of it: its images, the vector cache, and where predictions go."""

    def image_items(self, image_ids: Sequence[int] | None = None) -> list[LabelledItem]: ...
    def put_predictions(self, model_id: int, predictions: dict[int, StoredPrediction]) -> None: ...


@dataclass(frozen=True)
class ProjectPredictions:
    model_id: int
    predictions: dict[int, StoredPrediction]
    unreadable: tuple[int, ...]
    """Images whose photo could not be read (moved, deleted, damaged): they keep no prediction."""
    seconds: float


def predict_project(
    checkpoint: Checkpoint | Path | str,
    project: PredictionStore,
    model_id: int,
    *,
    device: str = "auto",
    image_ids: Sequence[int] | None = None,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    reporter: Reporter | None = None,
) -> ProjectPredictions:
    """Predict every project image (or those given), store the predictions under model_id and return them.

    Cancellation raises TrainingCancelled between chunks; the chunks done so far stay stored.
    """
    started = time.perf_counter()
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    reporter = reporter or Reporter(progress, cancel)
    resolved = resolve_device(device)
    built = restore_built(ckpt)
    built.model.to(resolved).eval()
    items = project.image_items(image_ids)
    present = [it for it in items if it.path.is_file()]
    unreadable = [it.image_id for it in items if not it.path.is_file()]
    names = ckpt.class_names
    out: dict[int, StoredPrediction] = {}
    for start in range(0, len(present), CHUNK):
        chunk = present[start : start + CHUNK]
        probs, failed = _probabilities_or_skip(built, ckpt, chunk, project, resolved, reporter)
        stored = {
            it.image_id: _stored(names, row) for it, row in zip(chunk, probs, strict=True) if it.image_id not in failed
        }
        unreadable += sorted(failed)
        project.put_predictions(model_id, stored)
        out.update(stored)
        reporter.start_phase("predicting")
        done = min(len(present), start + CHUNK)
        reporter.step(epoch=1, epochs=1, step=done, steps=len(present), images=len(chunk))
    return ProjectPredictions(model_id, out, tuple(unreadable), time.perf_counter() - started)


def _stored(names: Sequence[str], row: torch.Tensor) -> StoredPrediction:
    values = [float(v) for v in row]
    top = max(range(len(values)), key=values.__getitem__)
    return StoredPrediction(names[top], values[top], dict(zip(names, values, strict=True)))


def _probabilities_or_skip(
    built: BuiltModel,
    ckpt: Checkpoint,
    items: list[LabelledItem],
    store: VectorStore,
    device: torch.device,
    reporter: Reporter,
) -> tuple[torch.Tensor, set[int]]:
    """Probabilities of the items in order, and the ids of those whose photo cannot be read (their rows are
    zeros): a damaged photo costs its own prediction, not the chunk's."""
    try:
        return _probabilities(built, ckpt, items, store, device, reporter), set()
    except ImageFileError:
        if len(items) == 1:
            return torch.zeros(1, len(ckpt.class_names)), {items[0].image_id}
    rows: list[torch.Tensor] = []
    failed: set[int] = set()
    for item in items:
        probs, bad = _probabilities_or_skip(built, ckpt, [item], store, device, reporter)
        rows.append(probs[0])
        failed |= bad
    return torch.stack(rows), failed


@torch.no_grad()
def _probabilities(
    built: BuiltModel,
    ckpt: Checkpoint,
    items: list[LabelledItem],
    store: VectorStore,
    device: torch.device,
    reporter: Reporter,
) -> torch.Tensor:
    config = ckpt.config
    people = resolve_people(items, config.views, store, reporter)
    model = built.model
    if config.mode in FROZEN_BACKBONE_MODES:
        feats, _ = cached_features(built, config, items, device, reporter, store, people)
        head = model.head.cpu()
        probs = calibrated_probabilities(head(feats), head.temperature)
        model.head.to(device)
        return probs
    pre = built.preprocess
    views = PhotoViews.of(pre, config.views, dict(zip(items, people, strict=True)))
    batches = image_batches(
        items, pre, views, batch_size=config.batch_size, device=device, train=False, augment=False, seed=0,
        use_cache=config.decoded_cache,
    )  # fmt: skip
    rows: list[torch.Tensor] = []
    for x, _, _ in batches:  # in item order: one process takes every item
        reporter.check_cancel()
        with autocast(device):
            rows.append(model.probabilities(**x).float().cpu())
    return torch.cat(rows) if rows else torch.zeros(0, len(ckpt.class_names))
