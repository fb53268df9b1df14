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
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from harapp.core.errors import HarappError
from harapp.core.types import LabelSnapshot

log = logging.getLogger(__name__)


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
        except JobCancelled:
            self.cancelled.emit()
            return
        except BaseException as exc:  # noqa: BLE001 - every failure must end in exactly one terminal signal
            if _is_trainer_cancel(exc):
                self.cancelled.emit()
                return
            log.error("background job %s failed:\n%s", type(self).__name__, traceback.format_exc())
            self.failed.emit(error_message(exc))
            return
        if _result_says_cancelled(result) or (result is None and self.cancel_event.is_set()):
            self.cancelled.emit()
        else:
            self.finished.emit(result)


def error_message(exc: BaseException) -> str:
    """Our own errors carry a message fit for users; anything else also names its type."""
    if isinstance(exc, HarappError):
        return str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_trainer_cancel(exc: BaseException) -> bool:
    return type(exc).__name__ == "TrainingCancelled"


def _result_says_cancelled(result: object) -> bool:
    return bool(getattr(result, "cancelled", False) is True)


class JobHandle(QObject):
    """Owns a running worker and its thread until the thread has ended, then lets both go.

    ``done`` fires on the GUI thread after the terminal signal has been delivered and the thread has stopped.
    """

    done = Signal()

    def __init__(self, worker: Worker, thread: QThread, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker: Worker | None = worker
        self.thread: QThread | None = thread
        self.outcome: str | None = None  # "finished" | "failed" | "cancelled" once known
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        thread.finished.connect(self._on_thread_finished)

    @Slot(object)
    def _on_finished(self, _result: object) -> None:
        self.outcome = "finished"

    @Slot(str)
    def _on_failed(self, _message: str) -> None:
        self.outcome = "failed"

    @Slot()
    def _on_cancelled(self) -> None:
        self.outcome = "cancelled"

    def is_running(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has ended (used on close); True when it did within the timeout."""
        if self.thread is None:
            return True
        return bool(self.thread.wait(timeout_ms))

    def cancel_and_wait(self, timeout_ms: int = 30_000) -> bool:
        self.cancel()
        return self.wait(timeout_ms)

    @Slot()
    def _on_thread_finished(self) -> None:
        thread = self.thread
        if thread is None:
            return
        thread.wait()  # finished is emitted just before run() returns; make sure it really has
        self.thread = None
        self.worker = None
        _ACTIVE.discard(self)
        self.done.emit()


# Handles stay referenced here while their thread runs: dropping the last Python reference to a running
# QThread would destroy it mid-run and abort the process.
_ACTIVE: set[JobHandle] = set()


def start_worker(worker: Worker, *, name: str = "", parent: QObject | None = None) -> JobHandle:
    """Run ``worker.run`` on a new QThread; thread and worker are released when the job has ended.

    Connect to the worker's signals before calling this, or use the returned handle's ``done``.
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
        config: Any,
        snapshot: LabelSnapshot,
        checkpoint_path: Path,
        project_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.snapshot = snapshot
        self.checkpoint_path = Path(checkpoint_path)
        self.project_path = Path(project_path) if project_path is not None else None

    def work(self) -> Any:
        from harapp.ml import trainer

        project = None
        if self.project_path is not None:
            from harapp.core.store import Project

            project = Project.open(self.project_path)
        try:
            return trainer.train(
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


# --------------------------------------------------------------------------------------------------------
# Prediction


@dataclass(frozen=True)
class ImageInput:
    """An in-memory image (pasted or dropped as data) carried across threads as encoded PNG bytes."""

    name: str
    png: bytes


def qimage_to_input(image: QImage, name: str = "<pasted image>") -> ImageInput:
    """Encode a QImage on the GUI thread so the worker gets immutable bytes, not a Qt object."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return ImageInput(name=name, png=bytes(data.data()))


@dataclass(frozen=True)
class PredictOutcome:
    """One input's result: a prediction with a thumbnail, or an error message naming the file."""

    index: int
    source: str
    prediction: Any | None
    error: str | None
    thumb_size: tuple[int, int] = (0, 0)
    thumb_rgba: bytes = b""


THUMB_SIZE = 96

_predictor_lock = threading.Lock()
_predictor_cache: dict[tuple[str, float, str], Any] = {}


def get_predictor(checkpoint: Path, device: str = "auto") -> Any:
    """Load a Predictor once per checkpoint file version; loading is slow and jobs repeat often."""
    from harapp.ml.predictor import Predictor

    checkpoint = Path(checkpoint)
    try:
        mtime = checkpoint.stat().st_mtime
    except OSError as exc:
        raise HarappError(f"model checkpoint {checkpoint} cannot be read: {exc.strerror or exc}") from exc
    key = (str(checkpoint.resolve()), mtime, device)
    with _predictor_lock:
        predictor = _predictor_cache.get(key)
        if predictor is None:
            predictor = Predictor.from_checkpoint(checkpoint, device=device)
            _predictor_cache.clear()  # one model in memory at a time is enough for the app
            _predictor_cache[key] = predictor
        return predictor


def _open_input(item: Path | ImageInput) -> Any:
    import io

    from PIL import Image

    from harapp.core.errors import ImageFileError
    from harapp.ml.images import load_image

    if isinstance(item, ImageInput):
        try:
            with Image.open(io.BytesIO(item.png)) as img:
                return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad data
            raise ImageFileError(f"{item.name}: not a readable image ({exc})") from exc
    return load_image(Path(item))


def _thumbnail(image: Any) -> tuple[tuple[int, int], bytes]:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    rgba = thumb.convert("RGBA")
    return rgba.size, rgba.tobytes()


class PredictWorker(Worker):
    """Predicts a list of file paths and in-memory images; one bad input gives an error row, not a failure."""

    def __init__(
        self,
        checkpoint: Path,
        inputs: Sequence[Path | ImageInput],
        *,
        device: str = "auto",
        first_index: int = 0,
    ) -> None:
        super().__init__()
        self.checkpoint = Path(checkpoint)
        self.inputs: tuple[Path | ImageInput, ...] = tuple(inputs)
        self.device = device
        self.first_index = first_index

    def work(self) -> tuple[PredictOutcome, ...]:
        predictor = get_predictor(self.checkpoint, self.device)
        outcomes: list[PredictOutcome] = []
        for offset, item in enumerate(self.inputs):
            self.check_cancelled()
            outcome = self._predict_one(predictor, self.first_index + offset, item)
            outcomes.append(outcome)
            self.progressed.emit(outcome)
        return tuple(outcomes)

    def _predict_one(self, predictor: Any, index: int, item: Path | ImageInput) -> PredictOutcome:
        source = item.name if isinstance(item, ImageInput) else str(item)
        try:
            image = _open_input(item)
            size, rgba = _thumbnail(image)
            prediction = predictor.predict(image)
        except HarappError as exc:
            return PredictOutcome(index, source, None, error_message(exc))
        except Exception as exc:  # noqa: BLE001 - an odd file must not end the whole batch
            log.warning("prediction failed for %s: %s", source, exc)
            return PredictOutcome(index, source, None, f"{source}: {error_message(exc)}")
        return PredictOutcome(index, source, prediction, None, size, rgba)


class ProjectPredictWorker(Worker):
    """After training: predicts every image of the project so the gallery can show model disagreements.

    Takes (image_id, path) pairs read on the GUI thread and returns {image_id: (class, confidence, probs)};
    the GUI thread writes them with ``Project.put_predictions`` over its own connection.
    """

    def __init__(
        self,
        checkpoint: Path,
        images: Sequence[tuple[int, Path]],
        *,
        device: str = "auto",
        batch_size: int = 16,
    ) -> None:
        super().__init__()
        self.checkpoint = Path(checkpoint)
        self.images: tuple[tuple[int, Path], ...] = tuple((int(i), Path(p)) for i, p in images)
        self.device = device
        self.batch_size = max(1, batch_size)

    def work(self) -> dict[int, tuple[str, float, dict[str, float]]]:
        from harapp.ml.images import load_image

        predictor = get_predictor(self.checkpoint, self.device)
        results: dict[int, tuple[str, float, dict[str, float]]] = {}
        total = len(self.images)
        started = time.monotonic()
        for start in range(0, total, self.batch_size):
            self.check_cancelled()
            ids: list[int] = []
            batch: list[Any] = []
            for image_id, path in self.images[start : start + self.batch_size]:
                try:
                    batch.append(load_image(path))
                except HarappError as exc:  # a missing photo just gets no prediction
                    log.info("no prediction for image %s: %s", image_id, exc)
                    continue
                ids.append(image_id)
            if batch:
                predictions = predictor.predict(batch)
                for image_id, pred in zip(ids, predictions, strict=True):
                    probs = dict(zip(pred.class_names, (float(p) for p in pred.probabilities), strict=True))
                    results[image_id] = (pred.top_class, float(pred.top_probability), probs)
            done = min(total, start + self.batch_size)
            elapsed = max(1e-6, time.monotonic() - started)
            self.progressed.emit((done, total, done / elapsed))
        return results


def run_callable(fn: Callable[[threading.Event], Any]) -> Worker:
    """A worker for a one-off function taking the cancel event; handy for small jobs and tests."""

    class _CallableWorker(Worker):
        def work(self) -> Any:
            return fn(self.cancel_event)

    return _CallableWorker()
