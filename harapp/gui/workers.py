"""Background jobs for the GUI: a worker QObject moved to a QThread with one small signal vocabulary.

Every worker emits ``started`` once, any number of ``progressed(object)``, then exactly one terminal signal:
``finished(object)``, ``failed(str)`` or ``cancelled()`` -- also when the job raises, so the UI never waits
forever. Cancellation is a ``threading.Event`` the GUI thread sets directly (a queued slot would sit behind
the running job). Only plain frozen data crosses threads: configs, snapshots, paths, bytes, result records.
Threads are never terminated; a job stops by checking its cancel flag between steps.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from harapp.core.errors import HarappError
from harapp.core.store import Project
from harapp.core.types import LabelSnapshot
from harapp.ml.config import TrainConfig
from harapp.ml.errors import TrainingCancelled

if TYPE_CHECKING:
    from harapp.ml.trainer import TrainResult

log = logging.getLogger(__name__)

JobOutcome = Literal["finished", "failed", "cancelled"]


class JobCancelled(Exception):
    """Raised inside a job to stop it; the worker turns it into the ``cancelled`` signal."""


class Worker(QObject):
    """Base class: subclasses implement :meth:`work`; :meth:`run` guarantees the signal protocol."""

    started = Signal()
    progressed = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.cancel_event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop; safe to call from any thread, any number of times."""
        self.cancel_event.set()

    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise JobCancelled

    def work(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @Slot()
    def run(self) -> None:
        self.started.emit()
        try:
            result = self.work()
        except (JobCancelled, TrainingCancelled):
            self.cancelled.emit()
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must end in exactly one terminal signal
            log.error("background job %s failed:\n%s", type(self).__name__, traceback.format_exc())
            self.failed.emit(error_message(exc))
            return
        if result is None and self.cancel_event.is_set():
            self.cancelled.emit()
        else:
            self.finished.emit(result)


def error_message(exc: BaseException) -> str:
    """Our own errors carry a message fit for users; anything else also names its type."""
    if isinstance(exc, HarappError):
        return str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class JobHandle(QObject):
    """The GUI thread's side of a job: relays the worker's signals and owns worker and thread until the end.

    Connect to the handle's signals, not the worker's: the handle lives on the GUI thread, so its signals
    reach any slot -- lambdas and plain functions included -- on the GUI thread. (A lambda connected to the
    worker's own signal would run on the worker thread and touch widgets from there.)
    ``done`` fires after the terminal signal, once the thread has stopped.
    """

    started = Signal()
    progressed = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, worker: Worker, thread: QThread, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker: Worker | None = worker
        self.worker_thread: QThread | None = thread
        self.outcome: JobOutcome | None = None  # set once the terminal signal has come
        # Bound slots of an object living on the GUI thread: Qt queues these calls to the GUI thread.
        worker.started.connect(self._on_started)
        worker.progressed.connect(self._on_progressed)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        thread.finished.connect(self._on_thread_finished)

    @Slot()
    def _on_started(self) -> None:
        self.started.emit()

    @Slot(object)
    def _on_progressed(self, value: object) -> None:
        self.progressed.emit(value)

    @Slot(object)
    def _on_finished(self, result: object) -> None:
        self.outcome = "finished"
        self.finished.emit(result)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.outcome = "failed"
        self.failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self.outcome = "cancelled"
        self.cancelled.emit()

    def is_running(self) -> bool:
        return self.worker_thread is not None and self.worker_thread.isRunning()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has ended (used on close); True when it did within the timeout."""
        if self.worker_thread is None:
            return True
        return bool(self.worker_thread.wait(timeout_ms))

    def cancel_and_wait(self, timeout_ms: int = 30_000) -> bool:
        self.cancel()
        return self.wait(timeout_ms)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.worker_thread
        if thread is None:
            return
        thread.wait()  # finished is emitted just before run() returns; make sure it really has
        self.worker_thread = None
        self.worker = None
        _ACTIVE.discard(self)
        self.done.emit()


# Handles stay referenced here while their thread runs: dropping the last Python reference to a running
# QThread would destroy it mid-run and abort the process.
_ACTIVE: set[JobHandle] = set()


def start_worker(worker: Worker, *, name: str = "", parent: QObject | None = None) -> JobHandle:
    """Run ``worker.run`` on a new QThread; thread and worker are released when the job has ended.

    Connect to the returned handle's signals; they are delivered on the GUI thread in the worker's order.
    """
    thread = QThread()
    thread.setObjectName(name or type(worker).__name__)
    worker.moveToThread(thread)
    handle = JobHandle(worker, thread, parent)
    # Quit from the worker thread itself right after the terminal signal. A queued call would need the GUI
    # event loop, which is blocked while a closing window waits for this thread.
    for terminal in (worker.finished, worker.failed, worker.cancelled):
        terminal.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.started.connect(worker.run)
    _ACTIVE.add(handle)
    thread.start()
    return handle


def running_jobs() -> list[JobHandle]:
    return [h for h in _ACTIVE if h.is_running()]


# --------------------------------------------------------------------------------------------------------
# Training


class TrainWorker(Worker):
    """Runs ``harapp.ml.trainer.train`` with a frozen config and snapshot taken on the GUI thread.

    The project connection is opened in the worker thread (SQLite connections belong to one thread) so the
    trainer can use the embedding cache and register the model.
    """

    def __init__(
        self,
        config: TrainConfig,
        snapshot: LabelSnapshot,
        checkpoint_path: Path,
        project_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.snapshot = snapshot
        self.checkpoint_path = Path(checkpoint_path)
        self.project_path = Path(project_path) if project_path is not None else None

    def work(self) -> TrainResult:
        from harapp.ml import trainer  # torch loads here, in the worker thread, not while the window opens

        project = Project.open(self.project_path) if self.project_path is not None else None
        try:
            result = trainer.train(
                self.config,
                self.snapshot,
                self.checkpoint_path,
                progress=self.progressed.emit,
                cancel=self.cancel_event,
                project=project,
            )
        finally:
            if project is not None:
                project.close()
        if result.cancelled:  # the last good checkpoint stays on disk; the panel reports a cancel
            raise JobCancelled
        return result


def run_callable(fn: Callable[[threading.Event], Any]) -> Worker:
    """A worker for a one-off function taking the cancel event; handy for small jobs and tests."""

    class _CallableWorker(Worker):
        def work(self) -> Any:
            return fn(self.cancel_event)

    return _CallableWorker()
