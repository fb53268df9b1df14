"""After label corrections: retrain the active model when that is cheap, re-predict the project, re-score.

A head on frozen features (linear probe, zero-shot) retrains from the project's cached features in about a
second, so the gallery's badges and the label-quality scores can follow every correction. A model whose
backbone trains (scratch, fine-tune) takes minutes: it stays as it is until the person retrains it, and
only the scores (which always use a probe on cached features) refresh.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harapp.core.errors import HarappError
from harapp.core.paths import models_dir_for, new_checkpoint_path
from harapp.core.types import ModelRecord
from harapp.ml.checkpoint import load_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.kinds import FROZEN_BACKBONE_MODES
from harapp.ml.label_quality import LabelReview, ReviewProject, review_labels
from harapp.ml.progress import Reporter, TrainProgress
from harapp.ml.project_predictions import predict_project
from harapp.ml.trainer import TrainingProject, train

log = logging.getLogger(__name__)

REFRESH_TAG = "refresh"
"""Part of the file name of checkpoints a refresh writes: the next refresh may delete them."""


class CurationProject(TrainingProject, ReviewProject, Protocol):
    path: Path

    def active_model(self) -> ModelRecord | None: ...
    def label_revision(self) -> int: ...
    def unpredicted_image_ids(self, model_id: int) -> list[int]: ...


@dataclass(frozen=True)
class Refresh:
    model_id: int | None
    """The active model, retrained in place (same id) when it could be."""
    retrained: bool
    predictions: int
    """Project images with a fresh prediction of the active model."""
    review: LabelReview | None
    seconds: float
    note: str
    split: tuple[tuple[str, float], ...] = ()
    """Where the seconds went: ('retrain', s), ('project predictions', s), ('label scores', s)."""


def warm_up() -> None:
    """What the first refresh after opening a project would otherwise pay for (about 2 s on a 2-core CPU): the
    scoring library's imports and the shared frozen backbone. Run while the user looks at the photos."""
    from harapp.ml.cnn_models import warm_frozen_backbone
    from harapp.ml.label_quality import warm_up as warm_scoring

    warm_scoring()
    warm_frozen_backbone()


def refresh_after_corrections(
    project: CurationProject,
    *,
    device: str = "auto",
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Refresh:
    """Bring the active model (when cheap), its predictions and the label-quality scores up to the current
    labels. Raises TrainingCancelled when cancelled; HarappError when nothing can be scored."""
    started = time.perf_counter()
    reporter = Reporter(progress, cancel)
    active = project.active_model()
    config: TrainConfig | None = None
    notes: list[str] = []
    retrained, predicted = False, 0
    split: list[tuple[str, float]] = []
    l2: float | None = None
    if active is not None:
        try:
            ckpt = load_checkpoint(active.path)
        except HarappError as exc:
            notes.append(f"the active model cannot be read ({exc}); scores use harapp's default model")
        else:
            config = TrainConfig.from_dict({**ckpt.config.to_dict(), "device": device})
            # A linear probe's chosen strength serves its retrain and the scores' probe (same features).
            l2 = chosen_l2(ckpt.extra) if config.mode == "linear-probe" else None
            if config.mode not in FROZEN_BACKBONE_MODES:
                notes.append(f"the active model ({config.mode}) retrains only when you ask: it takes minutes")
            elif ckpt.label_revision != project.label_revision():
                retrained, predicted, predict_seconds = _retrain(project, active, config, reporter, l2)
                split += [
                    ("retrain", time.perf_counter() - started - predict_seconds),
                    ("project predictions", predict_seconds),
                ]
            elif unpredicted := project.unpredicted_image_ids(active.id):
                # An earlier refresh was cancelled after the retrain and before every image had its prediction.
                done = predict_project(
                    ckpt, project, active.id, device=device, image_ids=unpredicted, reporter=reporter
                )
                predicted = len(done.predictions)
                split.append(("project predictions", done.seconds))
    scoring_started = time.perf_counter()
    review = review_labels(project, config, reporter=reporter, l2=l2)
    split.append(("label scores", time.perf_counter() - scoring_started))
    if review.note:
        notes.append(review.note)
    model_id = active.id if active is not None else None
    seconds = time.perf_counter() - started
    return Refresh(model_id, retrained, predicted, review, seconds, "; ".join(notes), tuple(split))


def chosen_l2(extra: dict[str, Any]) -> float | None:
    """The penalty strength a linear probe's cross-validation chose, from its checkpoint's history."""
    for entry in extra.get("history", ()):
        if isinstance(entry, dict) and isinstance(entry.get("l2"), (int, float)):
            return float(entry["l2"])
    return None


def _retrain(
    project: CurationProject, active: ModelRecord, config: TrainConfig, reporter: Reporter, l2: float | None
) -> tuple[bool, int, float]:
    """(retrained, images predicted, seconds spent predicting them)."""
    out = new_checkpoint_path(project.path, config.model_kind, f"{config.mode}-{REFRESH_TAG}")
    result = train(
        config, project.snapshot(), out, project=project, replace_model=active.id, reporter=reporter, probe_l2=l2
    )
    if result.cancelled or result.model_id != active.id:
        return False, 0, 0.0
    old = result.replaced_path
    if old is not None and old != out and _written_by_a_refresh(old, project.path):
        try:
            old.unlink(missing_ok=True)  # a checkpoint an earlier refresh wrote: nothing else points at it
        except OSError as exc:
            log.info("could not delete the superseded checkpoint %s: %s", old, exc)
    if result.predictions is None:
        return True, 0, 0.0
    return True, len(result.predictions.predictions), result.predictions.seconds


_REFRESH_NAME = re.compile(rf"[\w.-]+-{REFRESH_TAG}-\d{{8}}-\d{{6}}-[0-9a-f]{{6}}\.pt")
"""The names new_checkpoint_path gives a refresh's checkpoints: kind-mode-refresh-date-time-tail.pt."""


def _written_by_a_refresh(path: Path, project_path: Path) -> bool:
    """Only a file this project's refreshes wrote, in its own models folder: a copied project file still points
    at the original's checkpoints, and a file the person named or trained is not the refresh's to delete."""
    return bool(_REFRESH_NAME.fullmatch(path.name)) and path.resolve().parent == models_dir_for(project_path).resolve()
