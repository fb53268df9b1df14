"""train(): one frozen config + one frozen label snapshot -> a checkpoint, metrics and (optionally) a model row."""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from harapp.core.errors import HarappError
from harapp.core.missing_files import without_missing
from harapp.core.types import LabelSnapshot
from harapp.ml.checkpoint import save_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.data import Split, class_weights, kfold_splits, stratified_split
from harapp.ml.device import free_cache, is_oom, resolve_device
from harapp.ml.embeddings import EmbeddingStore, cached_features, train_head
from harapp.ml.errors import OutOfMemoryError, TrainingCancelled, WeightsUnavailableError
from harapp.ml.kinds import FROZEN_BACKBONE_MODES, get_kind
from harapp.ml.loop import fit, predict_items
from harapp.ml.metrics import Metrics, compute_metrics
from harapp.ml.models import BuiltModel, build_model
from harapp.ml.progress import Reporter, TrainProgress

__all__ = [
    "Metrics",
    "OutOfMemoryError",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingCancelled",
    "WeightsUnavailableError",
    "cross_validate",
    "train",
]


class TrainingProject(EmbeddingStore, Protocol):
    """What train() needs of a project: its embedding cache, and the list of trained models to add to."""

    def register_model(
        self,
        name: str,
        kind: str,
        mode: str,
        path: Path,
        label_revision: int,
        metrics: dict[str, Any],
        config: dict[str, Any],
    ) -> int: ...


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: Path | None
    metrics: Metrics | None
    cancelled: bool
    model_id: int | None
    history: tuple[dict[str, Any], ...]


@dataclass
class _RunOutput:
    built: BuiltModel
    metrics: Metrics
    history: list[dict[str, Any]]
    embedded: int = 0  # images whose features had to be computed (the rest came from the cache)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _loss(config: TrainConfig, split: Split, num_classes: int) -> nn.Module:
    weight = class_weights(split.train, num_classes) if config.balanced_loss else None
    return nn.CrossEntropyLoss(weight=weight)


def _run_split(
    config: TrainConfig,
    snapshot: LabelSnapshot,
    split: Split,
    device: torch.device,
    reporter: Reporter,
    store: EmbeddingStore | None,
    on_improved: Callable[[BuiltModel, int, float], None] | None,
) -> _RunOutput:
    _seed_everything(config.seed)
    built = build_model(config, snapshot.class_names)
    names = snapshot.class_names
    loss_fn = _loss(config, split, len(names))
    if config.mode in FROZEN_BACKBONE_MODES:
        built.model.to(device)
        items = split.test if config.mode == "zero-shot" else split.train + split.val + split.test
        feats, computed = cached_features(built, config, items, device, reporter, store)
        head = built.model.head.cpu()
        history: list[dict[str, Any]] = []
        if config.mode == "linear-probe":
            n_train, n_val = len(split.train), len(split.val)
            tx, vx = feats[:n_train], feats[n_train : n_train + n_val]
            ty = torch.tensor([it.class_index for it in split.train])
            vy = torch.tensor([it.class_index for it in split.val])
            if not get_kind(config.model_kind).prompt_head:  # that head works on unit vectors as they are
                head.set_standardisation(tx)
            weight = class_weights(split.train, len(names)) if config.balanced_loss else None
            history = train_head(head, tx, ty, vx, vy, weight, reporter)
            feats = feats[n_train + n_val :]
        with torch.no_grad():
            preds = head(feats).argmax(1).tolist() if len(feats) else []
        built.model.head.to(device)
        targets = [it.class_index for it in split.test]
        metrics = compute_metrics(targets, preds, names, [it.image_id for it in split.test])
        return _RunOutput(built, metrics, history, computed)

    def improved(epoch: int, score: float) -> None:
        if on_improved is not None:
            on_improved(built, epoch, score)

    computed = 0
    history = []
    if config.mode == "fine-tune" and not get_kind(config.model_kind).prompt_head and built.backbone_pretrained:
        computed, history = _probe_first(built, config, split, device, reporter, store)
    history += fit(built, split, config, device, loss_fn, reporter, improved)
    reporter.start_phase("evaluating")
    targets, preds = predict_items(built, split.test, config, device, reporter, report=True)
    metrics = compute_metrics(targets, preds, names, [it.image_id for it in split.test])
    return _RunOutput(built, metrics, history, computed)


def _probe_first(
    built: BuiltModel,
    config: TrainConfig,
    split: Split,
    device: torch.device,
    reporter: Reporter,
    store: EmbeddingStore | None,
) -> tuple[int, list[dict[str, Any]]]:
    """Fit the head on frozen (cached) features before fine-tuning starts.

    A random head sends large, noisy gradients into the pretrained backbone in the first epochs; starting from
    the linear-probe solution (LP-FT) keeps the features and, with the few epochs a CPU affords, scores far
    better (see bench/README.md). A prompt head (CLIP's) needs none of this: it starts as a zero-shot classifier.
    """
    built.model.to(device)
    feats, computed = cached_features(built, config, split.train, device, reporter, store)
    head = built.model.head.cpu()
    head.set_standardisation(feats)
    ty = torch.tensor([it.class_index for it in split.train])
    weight = class_weights(split.train, len(head.linear.bias)) if config.balanced_loss else None
    # No val vectors: val must stay unseen for early stopping in the fine-tuning that follows.
    history = train_head(head, feats, ty, feats[:0], ty[:0], weight, reporter, phase="warm-up")
    built.model.head.to(device)
    return computed, [{**h, "stage": "linear-probe"} for h in history]


def _with_oom_retry(config: TrainConfig, run: Callable[[TrainConfig], _RunOutput], device: torch.device) -> _RunOutput:
    """Run once; on CUDA OOM retry once at half the batch, then give up with advice."""
    try:
        return run(config)
    except Exception as exc:
        if not is_oom(exc):
            raise
        free_cache(device)
        first = exc
    smaller = max(1, config.batch_size // 2)
    if smaller < config.batch_size:
        try:
            result = run(dataclasses.replace(config, batch_size=smaller))
            result.history.insert(0, {"event": "oom-retry", "batch_size": smaller})
            return result
        except Exception as exc:
            if not is_oom(exc):
                raise
            free_cache(device)
    raise OutOfMemoryError(
        f"The {device} device ran out of memory training {config.model_kind} ({config.mode}) at batch size "
        f"{config.batch_size} (a retry at {smaller} failed too). Try a smaller batch, e.g. --batch-size "
        f"{max(1, smaller // 2)}, a smaller image size, or --device cpu."
    ) from first


def _check_snapshot(snapshot: LabelSnapshot, config: TrainConfig) -> None:
    if len(snapshot.class_names) < 2:
        raise HarappError("Training needs at least two classes.")
    if not snapshot.items:
        raise HarappError("The project has no labelled images to train on.")
    present = {it.class_index for it in snapshot.items}
    if config.mode != "zero-shot" and len(present) < 2:
        raise HarappError("Every labelled image has the same class; label at least two classes to train.")


def cross_validate(
    config: TrainConfig,
    snapshot: LabelSnapshot,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    store: EmbeddingStore | None = None,
) -> list[Metrics]:
    """Stratified k-fold (config.folds >= 2): test metrics of each fold; no checkpoint is written."""
    config = config.validate()
    _check_snapshot(snapshot, config)
    device = resolve_device(config.device)
    reporter = Reporter(progress, cancel)
    out = []
    for split in kfold_splits(snapshot.items, max(2, config.folds), config.val_fraction, config.seed):

        def run(c: TrainConfig, split: Split = split) -> _RunOutput:
            return _run_split(c, snapshot, split, device, reporter, store, None)

        out.append(_with_oom_retry(config, run, device).metrics)
    return out


def train(
    config: TrainConfig,
    snapshot: LabelSnapshot,
    checkpoint_path: Path,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    project: TrainingProject | None = None,
) -> TrainResult:
    """Train, evaluate on the held-out split, write the checkpoint, register it in the project if given.

    Cancellation never raises: the result says cancelled and points to the last checkpoint this run wrote.
    """
    config = config.validate()
    # Photos deleted or moved since the import are left out (the CLI says how many before it starts), so a
    # run does not stop at the first one it meets.
    snapshot, missing = without_missing(snapshot)
    if missing.count and not snapshot.items:
        raise HarappError(f"Nothing to train on: {missing.describe(3)}.")
    _check_snapshot(snapshot, config)
    device = resolve_device(config.device)
    reporter = Reporter(progress, cancel)
    checkpoint_path = Path(checkpoint_path)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    written: list[Path] = []
    history: list[dict[str, Any]] = []
    if missing.count:
        history.append(
            {"event": "missing-files", "count": missing.count, "examples": [str(p) for p in missing.paths[:5]]}
        )

    def save(built: BuiltModel, metrics: Metrics | None, split_name: str, complete: bool, extra: dict) -> Path:
        path = save_checkpoint(
            checkpoint_path, built, config, snapshot.class_names, metrics=metrics, metrics_split=split_name,
            label_revision=snapshot.revision, complete=complete,
            backbone_changed=config.mode not in FROZEN_BACKBONE_MODES, extra=extra, started_at=started,
        )  # fmt: skip
        written.append(path)
        return path

    def improved(built: BuiltModel, epoch: int, score: float) -> None:
        # A good mid-run checkpoint, so a cancel or crash later still leaves a usable model.
        # The writer's pid and host let adopt_leftovers tell a run in progress from one that was killed.
        writer = {"writer_pid": os.getpid(), "writer_host": socket.gethostname()}
        save(built, None, "val", False, {"epoch": epoch, "val_accuracy": score, **writer})

    try:
        cv: list[dict[str, Any]] = []
        if config.folds > 1:
            for i, m in enumerate(cross_validate(config, snapshot, progress=progress, cancel=cancel, store=project)):
                cv.append({"fold": i, "accuracy": m.accuracy, "macro_f1": m.macro_f1})
            history += cv
        split = stratified_split(snapshot.items, config.val_fraction, config.test_fraction, config.seed)
        result = _with_oom_retry(
            config, lambda c: _run_split(c, snapshot, split, device, reporter, project, improved), device
        )
        history += result.history
        extra = {
            "split_sizes": [len(split.train), len(split.val), len(split.test)],
            "embedded_images": result.embedded,
            "history": result.history,
            "cv": cv,
            "device": str(device),
        }
        path = save(result.built, result.metrics, "test", True, extra)
    except TrainingCancelled:
        return TrainResult(written[-1] if written else None, None, True, None, tuple(history))
    model_id = None
    if project is not None:
        model_id = project.register_model(
            f"{config.model_kind} {config.mode} {time.strftime('%Y-%m-%d %H:%M')}",
            config.model_kind, config.mode, path, snapshot.revision, result.metrics.to_dict(), config.to_dict(),
        )  # fmt: skip
    history.append({"event": "done", "embedded_images": result.embedded})
    return TrainResult(path, result.metrics, False, model_id, tuple(history))
