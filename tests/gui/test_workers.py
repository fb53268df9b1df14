"""The worker vocabulary: one terminal signal, cancel within a step, and a GUI thread that stays responsive."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThread, QTimer

from harapp.gui.workers import JobHandle, Worker, run_callable, running_jobs, start_worker
from tests.gui.training_data import make_snapshot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_config(epochs: int):
    from harapp.ml.config import TrainConfig

    return TrainConfig(
        model_kind="cnn-scratch", mode="scratch", epochs=epochs, batch_size=4, image_size=32, device="cpu",
        early_stopping_patience=10_000, augment=False,
    )  # fmt: skip


class _Recorder:
    """Records every signal of a job handle (or worker), in order."""

    def __init__(self, worker: Worker | JobHandle) -> None:
        self.events: list[tuple[str, object]] = []
        worker.started.connect(lambda: self.events.append(("started", None)))
        worker.progressed.connect(lambda p: self.events.append(("progressed", p)))
        worker.finished.connect(lambda r: self.events.append(("finished", r)))
        worker.failed.connect(lambda m: self.events.append(("failed", m)))
        worker.cancelled.connect(lambda: self.events.append(("cancelled", None)))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def terminal(self) -> list[str]:
        return [n for n in self.names() if n in ("finished", "failed", "cancelled")]


def test_training_runs_reports_progress_and_finishes(qtbot, tmp_path: Path) -> None:
    from harapp.gui.workers import TrainWorker
    from harapp.ml.trainer import TrainProgress, TrainResult

    snapshot = make_snapshot(tmp_path / "photos", per_class=6)
    worker = TrainWorker(_tiny_config(epochs=3), snapshot, tmp_path / "model.pt")
    job = start_worker(worker)
    rec = _Recorder(job)
    with qtbot.waitSignal(job.done, timeout=60_000):
        pass
    assert rec.names()[0] == "started"
    assert rec.terminal() == ["finished"]
    progress = [p for n, p in rec.events if n == "progressed"]
    assert progress and all(isinstance(p, TrainProgress) for p in progress)
    assert progress[-1].fraction == pytest.approx(1.0)
    result = rec.events[-1][1]
    assert isinstance(result, TrainResult) and not result.cancelled
    assert result.checkpoint_path is not None and result.checkpoint_path.is_file()
    assert job.outcome == "finished" and job.worker_thread is None and not running_jobs()


def test_cancel_stops_training_within_a_step(qtbot, tmp_path: Path) -> None:
    from harapp.gui.workers import TrainWorker

    snapshot = make_snapshot(tmp_path / "photos", per_class=6)
    worker = TrainWorker(_tiny_config(epochs=500), snapshot, tmp_path / "model.pt")
    steps_seen: list[float] = []
    job = start_worker(worker)
    rec = _Recorder(job)
    job.progressed.connect(lambda p: steps_seen.append(time.monotonic()))
    qtbot.waitUntil(lambda: len(steps_seen) >= 3, timeout=60_000)
    cancelled_at = time.monotonic()
    job.cancel()  # set from the GUI thread while the worker is busy
    with qtbot.waitSignal(job.done, timeout=30_000):
        pass
    stopped_after = time.monotonic() - cancelled_at
    assert rec.terminal() == ["cancelled"]
    assert "finished" not in rec.names()
    # A step of this model takes milliseconds; two seconds is a generous bound that still catches a cancel
    # honoured only at epoch or run end (500 epochs take tens of seconds).
    assert stopped_after < 2.0, f"cancel took {stopped_after:.2f} s"


def test_worker_that_raises_emits_failed_exactly_once(qtbot) -> None:
    def job(cancel: threading.Event) -> None:
        raise RuntimeError("disk on fire")

    worker = run_callable(job)
    at_source = _Recorder(worker)  # direct: counts what the worker itself emits, on its own thread
    handle = start_worker(worker)
    relayed = _Recorder(handle)
    with qtbot.waitSignal(handle.done, timeout=10_000):
        pass
    qtbot.wait(50)  # any stray second signal would be queued by now
    for rec in (at_source, relayed):
        assert rec.names() == ["started", "failed"]
        assert rec.events[1][1] == "RuntimeError: disk on fire"
    assert handle.outcome == "failed"


def test_harapp_errors_keep_their_own_message(qtbot) -> None:
    from harapp.ml.errors import WeightsUnavailableError

    def job(cancel: threading.Event) -> None:
        raise WeightsUnavailableError("resnet18 weights are not cached and the network is unreachable")

    handle = start_worker(run_callable(job))
    rec = _Recorder(handle)
    with qtbot.waitSignal(handle.done, timeout=10_000):
        pass
    assert rec.events[-1] == ("failed", "resnet18 weights are not cached and the network is unreachable")


def test_trainer_failure_reaches_failed(qtbot, tmp_path: Path) -> None:
    from harapp.core.types import LabelSnapshot
    from harapp.gui.workers import TrainWorker

    snapshot = make_snapshot(tmp_path / "photos", per_class=3)
    one_class = LabelSnapshot(snapshot.class_names, tuple(i for i in snapshot.items if i.class_index == 0), 1)
    handle = start_worker(TrainWorker(_tiny_config(epochs=1), one_class, tmp_path / "model.pt"))
    rec = _Recorder(handle)
    with qtbot.waitSignal(handle.done, timeout=30_000):
        pass
    assert rec.terminal() == ["failed"]
    assert "class" in str(rec.events[-1][1])


def test_handle_delivers_signals_to_lambdas_on_the_gui_thread(qtbot) -> None:
    gui = QThread.currentThread()
    seen: list[tuple[str, object, bool]] = []

    def job(cancel: threading.Event) -> int:
        return 7

    worker = run_callable(job)
    ran_on: list[bool] = []
    worker.started.connect(lambda: ran_on.append(QThread.currentThread() == gui))
    handle = start_worker(worker)
    handle.started.connect(lambda: seen.append(("started", None, QThread.currentThread() == gui)))
    handle.finished.connect(lambda r: seen.append(("finished", r, QThread.currentThread() == gui)))
    with qtbot.waitSignal(handle.done, timeout=10_000):
        pass
    assert ran_on == [False], "the job itself must not run on the GUI thread"
    assert seen == [("started", None, True), ("finished", 7, True)]


def test_gui_thread_stays_responsive_while_training(qtbot, tmp_path: Path) -> None:
    from harapp.gui.workers import TrainWorker

    snapshot = make_snapshot(tmp_path / "photos", per_class=8)
    worker = TrainWorker(_tiny_config(epochs=500), snapshot, tmp_path / "model.pt")
    progressed: list[object] = []
    worker.progressed.connect(progressed.append)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)  # asks for 100 Hz; the assertion needs 20 Hz
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    job = start_worker(worker)
    qtbot.waitUntil(lambda: len(progressed) >= 1, timeout=60_000)  # training has really started
    timer.start()
    window = 2.0
    qtbot.wait(int(window * 1000))
    timer.stop()
    still_training = job.is_running()
    job.cancel()
    with qtbot.waitSignal(job.done, timeout=30_000):
        pass
    assert still_training, "training ended before the measurement window closed"
    rate = len(ticks) / window
    longest_gap = max(b - a for a, b in zip(ticks, ticks[1:], strict=False))
    print(f"GUI timer: {rate:.0f} Hz over {window:.0f} s of training, longest gap {1000 * longest_gap:.0f} ms")
    assert rate >= 20, f"GUI timer fired at {rate:.1f} Hz while training"
    assert longest_gap < 0.5, f"GUI thread blocked for {longest_gap * 1000:.0f} ms"
