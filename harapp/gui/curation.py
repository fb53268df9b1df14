"""Guided curation in the background: after corrections, refresh the active model, its badges and the scores.

A correction starts a short timer; when the person pauses, one job (its own thread, its own project
connection) runs harapp.ml.curation.refresh_after_corrections and reads back what the gallery shows, so the
GUI thread only swaps finished data into the model. Corrections made while a job runs ask for another run
when it ends. A training run takes precedence: the refresh waits for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from harapp.core.store import Project
from harapp.core.types import LabelQuality, StoredPrediction
from harapp.gui import gc_guard
from harapp.gui.workers import JobHandle, run_callable, start_worker

if TYPE_CHECKING:
    from harapp.ml.curation import Refresh

DELAY_MS = 250
"""Quiet time after the last correction before a refresh starts: a burst of keys makes one refresh."""


@dataclass(frozen=True)
class RefreshOutcome:
    project_path: Path
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
        if refresh.model_id is not None and (refresh.retrained or refresh.predictions > 0):
            predictions = project.predictions(refresh.model_id)
        return RefreshOutcome(project_path, refresh, predictions, tuple(project.label_quality()))


log = logging.getLogger(__name__)

_warming: list[threading.Thread] = []


def _warm_up_once() -> None:
    """Load what a refresh needs in the background while the user looks at the photos, once per process, so the
    first correction after opening a project costs about what the later ones do."""
    if not _warming:
        thread = threading.Thread(target=_warm_up, name="harapp-warm-up", daemon=True)
        _warming.append(thread)
        thread.start()


def wait_for_warm_up(timeout_s: float | None = None) -> bool:
    """Block until the warm-up has finished (for measurements that must not overlap it); True when it has."""
    for thread in _warming:
        thread.join(timeout_s)
    return not any(thread.is_alive() for thread in _warming)


def _warm_up() -> None:
    try:
        from harapp.ml.curation import warm_up  # imported here too: the GUI thread never waits for it

        warm_up()
    except Exception:  # noqa: BLE001 - a warm-up that fails only leaves the first refresh slower
        log.debug("warm-up failed", exc_info=True)
    finally:
        # The imports made many long-lived objects: the GUI thread's next collection would scan them all.
        gc_guard.request_freeze()


class CurationRefresher(QObject):
    """Runs at most one refresh at a time. A job that is cancelled (the project closed, a training run began)
    keeps running until it notices, but nothing it reports is used any more; the next job waits for it."""

    refreshed = Signal(object)
    """A RefreshOutcome of the open project, on the GUI thread."""
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
        """The running job, wanted or not."""
        self._wanted: JobHandle | None = None
        """The job whose outcome will be used: the running one unless it was cancelled."""
        self._again = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self.refresh_now)

    def set_project(self, project: Project | None) -> None:
        """Switch projects without waiting for a running refresh of the old one (it is cancelled)."""
        self._timer.stop()
        self._again = False
        self.cancel()
        # A read-only project can store neither a retrained model nor scores.
        self._path = project.path if project is not None and not project.readonly else None
        if self._path is not None:
            _warm_up_once()

    def labels_changed(self, *_args: object) -> None:
        """Keep existing scores fresh: once a project has scores, every correction refreshes them (the first
        scores come with a training run or Edit ▸ Score labels now)."""
        if self._path is not None and self.has_scores():
            self._timer.start()

    def training_started(self) -> None:
        """A training run takes the cores: cancel a running refresh and run it again after the training."""
        if self._wanted is not None and self.is_busy():
            self.cancel()
            self._again = True

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
        job.finished.connect(lambda outcome: self._on_finished(job, outcome))
        job.failed.connect(lambda text: self._on_failed(job, text))
        job.done.connect(lambda: self._on_done(job))
        self._job = self._wanted = job
        self.busy_changed.emit(True)
        return True

    def _on_finished(self, job: JobHandle, outcome: RefreshOutcome) -> None:
        if job is not self._wanted or outcome.project_path != self._path:
            return  # cancelled, or about a project that is no longer open
        self.refreshed.emit(outcome)
        refresh = outcome.refresh
        review = refresh.review
        wrong = sum(1 for r in review.rows if r.queue == "review" and r.likely_wrong) if review is not None else 0
        parts = [f"Scores updated in {refresh.seconds:.1f} s: {wrong} labels look wrong"]
        if refresh.retrained:
            parts.append(f"the active model learned the corrections ({refresh.predictions} photos re-predicted)")
        self.message.emit("; ".join(parts) + ".")

    def _on_failed(self, job: JobHandle, text: str) -> None:
        if job is self._wanted:
            self.message.emit(f"Scores not updated: {text}")

    def _on_done(self, job: JobHandle) -> None:
        if job is not self._job:
            return
        self._job = None
        if self._wanted is job:
            self._wanted = None
        self.busy_changed.emit(False)
        if self._again:
            self._again = False
            self.refresh_now()

    def cancel(self) -> None:
        """Cancel the running refresh without waiting; what it reports from now on is ignored."""
        self._timer.stop()
        job, self._wanted = self._wanted, None
        if job is not None:
            job.cancel()

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel and wait for the running refresh (closing the window); True when it ended in time."""
        self.cancel()
        self._again = False
        job = self._job
        return job.cancel_and_wait(timeout_ms) if job is not None and job.is_running() else True
