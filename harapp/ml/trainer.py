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
from harapp.core.types import LabelledItem, LabelSnapshot
from harapp.ml.calibration import (
    Calibration,
    ece_if_perfectly_calibrated,
    expected_calibration_error,
    fit_class_temperatures,
    reliability,
)
from harapp.ml.checkpoint import save_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.data import Split, class_weights, kfold_splits, stratified_split
from harapp.ml.device import free_cache, is_oom, resolve_device
from harapp.ml.distributed import from_leader, leader_only, ranks
from harapp.ml.embeddings import EmbeddingStore, cached_features
from harapp.ml.errors import OutOfMemoryError, TrainingCancelled, WeightsUnavailableError
from harapp.ml.head import L2_GRID, fit_probe
from harapp.ml.kinds import FROZEN_BACKBONE_MODES, get_kind
from harapp.ml.loop import People, fit, predict_logits
from harapp.ml.metrics import Metrics, compute_metrics
from harapp.ml.models import BuiltModel, build_model, calibrated_probabilities
from harapp.ml.people import PersonInput, resolve_people
from harapp.ml.photo_views import PhotoViews
from harapp.ml.progress import Reporter, TrainProgress
from harapp.ml.project_predictions import PredictionStore, ProjectPredictions, predict_project
from harapp.ml.run_images import current_run, run_images

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


class TrainingProject(PredictionStore, Protocol):
    """What train() needs of a project: its vector cache, its images, the list of trained models to add to
    and the predictions of the new one."""

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

    def update_model(
        self, model_id: int, path: Path, label_revision: int, metrics: dict[str, Any], config: dict[str, Any]
    ) -> Path | None: ...


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: Path | None
    metrics: Metrics | None
    cancelled: bool
    model_id: int | None
    history: tuple[dict[str, Any], ...]
    predictions: ProjectPredictions | None = None
    """The project's images predicted by the new model (when training had a project and got that far)."""
    replaced_path: Path | None = None
    """The checkpoint the retrained model pointed at before (with replace_model)."""


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
    people: People,
    device: torch.device,
    reporter: Reporter,
    store: EmbeddingStore | None,
    on_improved: Callable[[BuiltModel, int, float], None] | None,
    probe_l2: float | None = None,
) -> _RunOutput:
    _seed_everything(config.seed)
    built = build_model(config, snapshot.class_names)
    if config.mode in FROZEN_BACKBONE_MODES:
        return _run_frozen(built, config, snapshot, split, people, device, reporter, store, probe_l2)
    _decode_up_front(built, config, snapshot, people)

    def improved(epoch: int, score: float) -> None:
        if on_improved is not None:
            on_improved(built, epoch, score)

    computed = 0
    history: list[dict[str, Any]] = []
    if config.mode == "fine-tune" and not get_kind(config.model_kind).prompt_head and built.backbone_pretrained:
        computed, history = _probe_first(built, config, split, people, device, reporter, store)
    loss_fn = _loss(config, split, len(snapshot.class_names))
    history += fit(built, split, people, config, device, loss_fn, reporter, improved)
    reporter.start_phase("evaluating")
    fitted_on = "nothing (no validation images): not calibrated"
    temperatures = torch.ones_like(built.model.head.temperature)
    if split.val:
        val_targets, val_logits = predict_logits(built, split.val, people, config, device, reporter)
        temperatures = fit_class_temperatures(val_logits.cpu(), torch.tensor(val_targets))
        fitted_on = f"predictions of {len(split.val)} validation images"
    built.model.head.temperature.copy_(temperatures)
    targets, logits = predict_logits(built, split.test, people, config, device, reporter, report=True)
    metrics = _test_metrics(built, snapshot, split, targets, logits, fitted_on)
    return _RunOutput(built, metrics, history, computed)


def _resolve_people(
    snapshot: LabelSnapshot, config: TrainConfig, store: EmbeddingStore | None, reporter: Reporter
) -> dict[LabelledItem, PersonInput]:
    """Each labelled item's person, once per run. Across ranks rank 0 finds them (it alone has the project, its
    cache of people and poses, and surely the photos) and sends them to the others, which never write the
    project."""
    items = snapshot.items
    found = leader_only(lambda: resolve_people(items, config.views, store, reporter))
    assert found is not None
    return dict(zip(items, found, strict=True))


def _decode_up_front(built: BuiltModel, config: TrainConfig, snapshot: LabelSnapshot, people: People) -> None:
    """Decode every labelled photo's views into the run's cache now, in one 'decoding' phase, rather than in
    pieces as the warm-up's features, the epochs and the evaluation first ask for them."""
    run = current_run()
    if run is not None and config.decoded_cache:
        pre = built.preprocess
        views = PhotoViews.of(pre, config.views, people)
        run.slots(snapshot.items, views, pre.image_size, pre.interpolation, all_items=True)


def _run_frozen(
    built: BuiltModel,
    config: TrainConfig,
    snapshot: LabelSnapshot,
    split: Split,
    people: People,
    device: torch.device,
    reporter: Reporter,
    store: EmbeddingStore | None,
    probe_l2: float | None = None,
) -> _RunOutput:
    """Linear probe or zero-shot: the head on cached features of every view.

    Train and validation images together are the fitting set: the inner cross-validation of the probe
    needs no separate validation split, and its out-of-fold predictions calibrate the confidence.
    """
    built.model.to(device)
    items = split.train + split.val + split.test
    feats, computed = cached_features(built, config, items, device, reporter, store, [people[it] for it in items])
    head = built.model.head.cpu()
    n_fit = len(split.train) + len(split.val)
    fit_x = feats[:n_fit]
    fit_y = torch.tensor([it.class_index for it in items[:n_fit]], dtype=torch.long)
    history: list[dict[str, Any]] = []
    if config.mode == "linear-probe":
        grid = (probe_l2,) if probe_l2 is not None else L2_GRID
        probe = fit_probe(head, fit_x, fit_y, reporter, balanced=config.balanced_loss, seed=config.seed, grid=grid)
        fitted_on = f"out-of-fold predictions of {n_fit} images ({probe.folds} folds)" if probe.folds else probe.note
        history.append(
            {"epoch": 1, "loss": probe.loss, "val_accuracy": probe.oof_accuracy, "l2": probe.l2,
             "temperatures": probe.temperatures.tolist(), "folds": probe.folds, "note": probe.note}
        )  # fmt: skip
    else:
        with torch.no_grad():
            head.temperature.copy_(
                fit_class_temperatures(head(fit_x), fit_y) if n_fit else torch.ones_like(head.temperature)
            )
        fitted_on = f"zero-shot predictions of {n_fit} labelled images" if n_fit else "nothing: not calibrated"
    with torch.no_grad():
        logits = head(feats[n_fit:])
    built.model.head.to(device)
    targets = [it.class_index for it in split.test]
    metrics = _test_metrics(built, snapshot, split, targets, logits, fitted_on)
    return _RunOutput(built, metrics, history, computed)


def _test_metrics(
    built: BuiltModel,
    snapshot: LabelSnapshot,
    split: Split,
    targets: list[int],
    logits: torch.Tensor,
    fitted_on: str,
) -> Metrics:
    """Held-out metrics from test logits, with the calibration the head's temperatures give them."""
    temperatures = built.model.head.temperature.detach().cpu()
    probs = calibrated_probabilities(logits.cpu(), temperatures)
    raw = logits.cpu().float().softmax(-1)
    calibration = Calibration(
        tuple(temperatures.tolist()), expected_calibration_error(probs, targets),
        expected_calibration_error(raw, targets), tuple(reliability(probs, targets)), fitted_on,
        ece_if_perfectly_calibrated(probs)[1] if len(probs) else None,
    )  # fmt: skip
    preds = probs.argmax(1).tolist() if len(probs) else []
    ids = [it.image_id for it in split.test]
    return compute_metrics(targets, preds, snapshot.class_names, ids, probs.tolist(), calibration)


def _probe_first(
    built: BuiltModel,
    config: TrainConfig,
    split: Split,
    people: People,
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
    train_people = [people[it] for it in split.train]
    feats, computed = cached_features(built, config, split.train, device, reporter, store, train_people)
    head = built.model.head.cpu()
    ty = torch.tensor([it.class_index for it in split.train], dtype=torch.long)
    # Train vectors only: val must stay unseen for early stopping and calibration after fine-tuning.
    probe = fit_probe(head, feats, ty, reporter, balanced=config.balanced_loss, seed=config.seed, phase="warm-up")
    built.model.head.to(device)
    return computed, [{"epoch": 1, "loss": probe.loss, "val_accuracy": probe.oof_accuracy, "stage": "linear-probe"}]


def _with_oom_retry(config: TrainConfig, run: Callable[[TrainConfig], _RunOutput], device: torch.device) -> _RunOutput:
    """Run once; on CUDA OOM retry once at half the batch, then give up with advice."""
    try:
        return run(config)
    except Exception as exc:
        if not is_oom(exc) or ranks().world > 1:
            # Across ranks a retry on one rank alone would pair its next collective with another rank's pending
            # one: the job fails as a whole instead (DistributedJob names the rank).
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
    reporter = _across_ranks(Reporter(progress, cancel))
    with run_images(snapshot, reporter):
        return _cross_validate(config, snapshot, _resolve_people(snapshot, config, store, reporter), reporter, store)


def _cross_validate(
    config: TrainConfig, snapshot: LabelSnapshot, people: People, reporter: Reporter, store: EmbeddingStore | None
) -> list[Metrics]:
    device = resolve_device(config.device)
    out = []
    for split in kfold_splits(snapshot.items, max(2, config.folds), config.val_fraction, config.seed):

        def run(c: TrainConfig, split: Split = split) -> _RunOutput:
            return _run_split(c, snapshot, split, people, device, reporter, store, None)

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
    predict_project_images: bool = True,
    replace_model: int | None = None,
    reporter: Reporter | None = None,
    probe_l2: float | None = None,
) -> TrainResult:
    """Train, evaluate on the held-out split, write the checkpoint, register it in the project if given and
    then predict every image of that project with it (the gallery's badges). replace_model: the id of the
    model this run retrains (after label corrections): its row then points at the new checkpoint instead of a
    new row being added. probe_l2: a linear probe's penalty strength, chosen before (a retrain after a few
    corrections keeps it rather than choosing again: seconds matter there).

    Cancellation never raises: the result says cancelled and points to the last checkpoint this run wrote.
    """
    config = config.validate()
    # Photos deleted or moved since the import are left out (the CLI says how many before it starts), so a
    # run does not stop at the first one it meets. Across ranks rank 0's disk decides: another machine may hold
    # only the decoded-image cache.
    checked = leader_only(lambda: without_missing(snapshot))
    assert checked is not None
    snapshot, missing = checked
    if missing.count and not snapshot.items:
        raise HarappError(f"Nothing to train on: {missing.describe(3)}.")
    _check_snapshot(snapshot, config)
    device = resolve_device(config.device)
    reporter = _across_ranks(reporter or Reporter(progress, cancel))
    checkpoint_path = Path(checkpoint_path)
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    written: list[Path] = []
    history: list[dict[str, Any]] = []
    if missing.count:
        history.append(
            {"event": "missing-files", "count": missing.count, "examples": [str(p) for p in missing.paths[:5]]}
        )

    def save(built: BuiltModel, metrics: Metrics | None, split_name: str, complete: bool, extra: dict) -> Path:
        if not ranks().is_leader:  # across ranks, rank 0 alone writes
            return checkpoint_path
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

    with run_images(snapshot, reporter) as run:  # the run's decoded-image cache, for every loader of the run
        try:
            people = _resolve_people(snapshot, config, project, reporter)
            cv: list[dict[str, Any]] = []
            if config.folds > 1:
                for i, m in enumerate(_cross_validate(config, snapshot, people, reporter, project)):
                    cv.append({"fold": i, "accuracy": m.accuracy, "macro_f1": m.macro_f1})
                history += cv
            split = stratified_split(snapshot.items, config.val_fraction, config.test_fraction, config.seed)

            def run_split(c: TrainConfig) -> _RunOutput:
                return _run_split(c, snapshot, split, people, device, reporter, project, improved, probe_l2)

            result = _with_oom_retry(config, run_split, device)
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
        history += [{"event": "decoded-image cache", "note": note} for note in run.notes]
        model_id, replaced = _register(project, replace_model, config, snapshot, path, result.metrics)
        predictions = None
        if from_leader(project is not None and model_id is not None and predict_project_images):
            # The project's other photos are read once: from the cache where it has them, never added to it.
            run.stop_adding()
            try:
                predictions = leader_only(lambda: _predict(path, project, model_id, config, reporter), share=False)
            except TrainingCancelled:
                history.append({"event": "predictions cancelled"})
    history.append({"event": "done", "embedded_images": result.embedded})
    return TrainResult(path, result.metrics, False, model_id, tuple(history), predictions, replaced)


def _across_ranks(reporter: Reporter) -> Reporter:
    """In a job of several ranks, every rank stops at the same batch (Reporter.agree_on_cancel)."""
    if ranks().world > 1:
        reporter.agree_on_cancel(lambda: ranks().world > 1)
    return reporter


def _register(
    project: TrainingProject | None,
    replace_model: int | None,
    config: TrainConfig,
    snapshot: LabelSnapshot,
    path: Path,
    metrics: Metrics,
) -> tuple[int | None, Path | None]:
    """The new model's id in the project (None without a project: across ranks, on all but rank 0), and the
    checkpoint it replaced, if it replaced one."""
    if project is None:
        return None, None
    metrics_dict, config_dict = metrics.to_dict(), config.to_dict()
    if replace_model is not None:
        replaced = project.update_model(replace_model, path, snapshot.revision, metrics_dict, config_dict)
        if replaced is not None:
            return replace_model, replaced
    return project.register_model(
        f"{config.model_kind} {config.mode} {time.strftime('%Y-%m-%d %H:%M')}",
        config.model_kind, config.mode, path, snapshot.revision, metrics_dict, config_dict,
    ), None  # fmt: skip


def _predict(
    path: Path, project: TrainingProject | None, model_id: int | None, config: TrainConfig, reporter: Reporter
) -> ProjectPredictions:
    assert project is not None and model_id is not None
    return predict_project(path, project, model_id, device=config.device, reporter=reporter)
