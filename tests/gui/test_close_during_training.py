"""Closing while a model trains: the run is cancelled, the window waits for it, and no QThread is left."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QVBoxLayout, QWidget

from harapp.gui.training_panel import TrainingPanel
from harapp.gui.workers import running_jobs
from tests.conftest import _running_qthreads
from tests.gui.training_data import TINY, make_project

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _start_long_run(qtbot, panel: TrainingPanel) -> None:
    panel.config_overrides = dict(TINY)
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(500)  # far longer than the test: only a cancel can end it in time
    panel.batch_spin.setValue(4)
    assert panel.start()
    qtbot.waitUntil(lambda: len(panel.chart.points()) >= 2, timeout=60_000)
    assert panel.is_training()


def test_main_window_closes_while_training(qtbot, tmp_path: Path) -> None:
    from harapp.gui import main_window

    project = make_project(tmp_path, per_class=6)
    project_path = project.path
    project.close()
    window = main_window.MainWindow(project_path)
    qtbot.addWidget(window)
    window.show()
    panel = window.training_panel
    assert isinstance(panel, TrainingPanel), f"the window did not load the training panel: {panel!r}"
    _start_long_run(qtbot, panel)
    job = panel.train_job
    started = time.monotonic()
    assert window.close()
    took = time.monotonic() - started
    assert not job.is_running(), "close returned while the training thread still ran"
    assert job.worker is None or job.worker.is_cancelled()
    assert took < 10, f"closing took {took:.1f} s"
    assert not running_jobs() and not _running_qthreads()


def test_panel_in_any_window_cancels_when_that_window_closes(qtbot, tmp_path: Path) -> None:
    # A host window that knows nothing about training: the panel watches its top-level window itself.
    project = make_project(tmp_path, per_class=6)
    host = QWidget()
    qtbot.addWidget(host)
    panel = TrainingPanel(host)
    QVBoxLayout(host).addWidget(panel)
    host.show()
    panel.set_project(project)
    _start_long_run(qtbot, panel)
    cancelled: list[bool] = []
    panel.train_job.cancelled.connect(lambda: cancelled.append(True))
    assert host.close()
    assert not panel.is_training()
    assert not running_jobs() and not _running_qthreads()
    qtbot.waitUntil(lambda: cancelled == [True], timeout=5_000)  # the queued terminal signal still arrives
    assert "cancelled" in panel.status_label.text().lower()
    project.close()


def test_switching_project_while_training_cancels_and_keeps_results_out(qtbot, tmp_path: Path) -> None:
    first = make_project(tmp_path / "first", per_class=6)
    second = make_project(tmp_path / "second", per_class=6)
    panel = TrainingPanel()
    qtbot.addWidget(panel)
    panel.set_project(first)
    _start_long_run(qtbot, panel)
    job = panel.train_job
    panel.set_project(second)
    assert not job.is_running()
    qtbot.wait(100)  # let the old job's queued signals arrive
    assert panel.chart.points() == [], "the old run's progress must not draw on the new project's chart"
    assert "cancelled" not in panel.status_label.text().lower()
    assert first.models() == [] and second.models() == []
    assert panel.start_button.isEnabled()
    first.close()
    second.close()
