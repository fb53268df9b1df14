"""Guided curation in the background: after corrections, refresh the active model, its badges and the scores.

A correction starts a short timer; when the person pauses, one job (its own thread, its own project
connection) runs harapp.ml.curation.refresh_after_corrections and reads back what the gallery shows, so the
GUI thread only swaps finished data into the model. Corrections made while a job runs ask for another run
when it ends. A training run takes precedence: the refresh waits for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from harapp.core.store import Project
from harapp.core.types import LabelQuality, StoredPrediction
from harapp.gui.workers import JobHandle, run_callable, start_worker

if TYPE_CHECKING:
    from harapp.ml.curation import Refresh

DELAY_MS = 250
"""Quiet time after the last correction before a refresh starts: a burst of keys makes one refresh."""


@dataclass(frozen=True)
class RefreshOutcome:
    refresh: Refresh
    predictions: dict[int, StoredPrediction] | None
    """The active model's new predictions when it was retrained, else None (they did not change)."""
    quality: tuple[LabelQuality, ...]


def refresh_project(project_path: Path, device: str, cancel: threading.Event) -> RefreshOutcome:
    """The background job: refresh, then read back what the gallery needs."""
    from harapp.ml.curation import refresh_after_corrections

    with Project.open(project_path) as project:
        refresh = refresh_after_corrections(project, device=device, cancel=cancel)
        predictions = None
        if refresh.retrained and refresh.model_id is not None:
            predictions = project.predictions(refresh.model_id)
        return RefreshOutcome(refresh, predictions, tuple(project.label_quality()))


class CurationRefresher(QObject):
    refreshed = Signal(object)
    """A RefreshOutcome, on the GUI thread."""
    message = Signal(str)
    """Status text: what the refresh did, or why it could not run."""
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.is_training: Callable[[], bool] = lambda: False
        self.has_scores: Callable[[], bool] = lambda: True
        self.device: Callable[[], str] = lambda: "auto"
        self._path: Path | None = None
        self._job: JobHandle | None = None
        self._again = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self.refresh_now)

    def set_project(self, project: Project | None) -> None:
        self._timer.stop()
        self._again = False
        self.stop()
        # A read-only project can store neither a retrained model nor scores.
        self._path = project.path if project is not None and not project.readonly else None

    def labels_changed(self, *_args: object) -> None:
        """Keep existing scores fresh: once a project has scores, every correction refreshes them (the first
        scores come with a training run or Edit ▸ Score labels now)."""
        if self._path is not None and self.has_scores():
            self._timer.start()

    def is_busy(self) -> bool:
        return self._job is not None and self._job.is_running()

    def refresh_now(self) -> bool:
        """Start a refresh (or ask for one after the running one); False when there is no project to refresh."""
        if self._path is None:
            return False
        if self.is_busy():
            self._again = True  # once the running job ends
            return True
        if self.is_training():
            self._timer.start()  # look again shortly: the run's own cores come first
            return True
        path, device = self._path, self.device()
        job = start_worker(run_callable(lambda cancel: refresh_project(path, device, cancel)), name="harapp-curation")
        job.finished.connect(self._on_finished)
        job.failed.connect(lambda text: self.message.emit(f"Scores not updated: {text}"))
        job.done.connect(self._on_done)
        self._job = job
        self.busy_changed.emit(True)
        return True

    def _on_finished(self, outcome: RefreshOutcome) -> None:
        if self._path is None:
            return  # the project closed while the job ran
        self.refreshed.emit(outcome)
        refresh = outcome.refresh
        review = refresh.review
        wrong = sum(1 for r in review.rows if r.queue == "review" and r.likely_wrong) if review is not None else 0
        parts = [f"Scores updated in {refresh.seconds:.1f} s: {wrong} labels look wrong"]
        if refresh.retrained:
            parts.append(f"the active model learned the corrections ({refresh.predictions} photos re-predicted)")
        self.message.emit("; ".join(parts) + ".")

    def _on_done(self) -> None:
        self._job = None
        self.busy_changed.emit(False)
        if self._again:
            self._again = False
            self.refresh_now()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        self._timer.stop()
        job, self._job = self._job, None
        if job is not None and job.is_running():
            return job.cancel_and_wait(timeout_ms)
        return True
