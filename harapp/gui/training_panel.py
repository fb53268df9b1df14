"""The Train mode: choose a model, see how long it will take, train it in the background, read the results.

Training runs in a TrainWorker on its own thread with a frozen TrainConfig and LabelSnapshot taken here on the
GUI thread; after a run on a project, a second job predicts every project image so the gallery can show model
predictions and disagreements. Both jobs are phases of one run on one progress bar (harapp.ml.run_progress),
weighted by the time estimate shown before Start (harapp.ml.estimate, measured on this machine). When a
project opens, the Results, chart and settings of its active model come back (from the models table and the
checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QSplitter,
    QTabWidget,
    QWidget,
)

from harapp.core.paths import new_checkpoint_path
from harapp.core.store import Project
from harapp.core.types import ModelRecord
from harapp.gui.chart import TrainingChart
from harapp.gui.model_history import draw_history, metrics_of, prepare_chart, read_history
from harapp.gui.models_table import ModelsTable, model_caption
from harapp.gui.results_view import ResultsView
from harapp.gui.train_controls import RunControls
from harapp.gui.train_estimate import RunEstimator
from harapp.gui.train_form import TrainForm
from harapp.gui.workers import JobHandle, TrainWorker, run_callable, start_worker
from harapp.ml.config import TrainConfig
from harapp.ml.defaults import preferred_device
from harapp.ml.estimate import RunEstimate, format_duration
from harapp.ml.kinds import MODE_LABELS, get_kind
from harapp.ml.mode_fields import fit_axis
from harapp.ml.progress import TrainProgress
from harapp.ml.run_progress import RunStatus, RunTracker, chart_x

if TYPE_CHECKING:
    from harapp.ml.trainer import TrainResult

log = logging.getLogger(__name__)


class TrainingPanel(QWidget):
    active_model_changed = Signal(int)
    confusion_cell_clicked = Signal(str, str, list)
    predictions_updated = Signal(int)
    """Emitted with the model id once the project's images have fresh predictions stored."""
    run_progressed = Signal(float, str)
    """The whole run's fraction and a short text, for the window's run indicator."""
    run_ended = Signal(str)
    state_changed = Signal()
    """Buttons changed state (a run started or ended, a project opened): the window syncs its menu actions."""
    idle = Signal()
    """No job of this panel is running any more (after a run, its predictions, or a stop)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.config_overrides: dict[str, Any] = {}
        """Extra TrainConfig fields (tests: tiny image size, CPU device; power users: seeds, folds)."""
        self.train_job: JobHandle | None = None
        self.device_job: JobHandle | None = None
        self.history_job: JobHandle | None = None
        self.last_config: TrainConfig | None = None
        self.last_result: TrainResult | None = None
        self.tracker: RunTracker | None = None
        self.estimate: RunEstimate | None = None
        self.stopping = False
        self.window_manages_close = False
        """Set by a main window that asks before closing and stops the run itself (close_guard.py); any other
        host window's close cancels and waits here."""
        self._planned_seconds: float | None = None
        self._truth: dict[int, int] = {}
        self._watched_window: QWidget | None = None
        self._generation = 0
        self.estimator = RunEstimator(self)
        self.estimator.changed.connect(self.update_estimate)
        self._build()
        self._update_buttons()

    # -- construction ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.form = TrainForm(self)
        self.form.changed.connect(self.update_estimate)
        # Shortcuts for tests and the main window's menus.
        self.kind_combo, self.mode_combo = self.form.kind_combo, self.form.mode_combo
        self.epochs_spin, self.batch_spin, self.lr_spin = self.form.epochs_spin, self.form.batch_spin, self.form.lr_spin

        controls = RunControls(self.form, self)
        self.estimate_label, self.progress_bar = controls.estimate_label, controls.progress_bar
        self.start_button, self.cancel_button, self.retrain_button = controls.buttons
        self.status_label, self.message_label = controls.status_label, controls.message_label
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.retrain_button.clicked.connect(self.retrain)

        self.chart = TrainingChart(self)
        self.results = ResultsView(self)
        self.results.cell_clicked.connect(self.confusion_cell_clicked)
        self.confusion = self.results.confusion
        self.metrics_label = self.results.metrics_label
        self.models_table = ModelsTable(self)
        self.models_table.activate_requested.connect(self.set_active_model)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.results, "Results")
        self.tabs.addTab(self.models_table, "Models")

        right = QSplitter(Qt.Orientation.Vertical, self)
        right.addWidget(self.chart)
        right.addWidget(self.tabs)
        right.setStretchFactor(0, 1)  # the chart while training, the results after: both need height
        right.setStretchFactor(1, 1)
        right.setChildrenCollapsible(False)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(controls)
        layout.addWidget(right, 1)

    def _fill_device(self) -> None:
        """Ask torch for the device off the GUI thread: its first import takes seconds."""
        preference = self.config_overrides.get("device") or preferred_device()

        def describe(_cancel: object) -> str:
            from harapp.ml.device import describe_device

            return describe_device(preference)

        job = start_worker(run_callable(describe), name="harapp-device", parent=self)
        job.finished.connect(self.form.device_label.setText)
        job.failed.connect(lambda message: self.form.device_label.setText(f"unknown ({message})"))
        self.device_job = job

    def build_config(self) -> TrainConfig:
        return self.form.build_config(self.config_overrides)

    # -- project and models ----------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        if project is self.project:
            self.refresh_models()
            return
        self._stop_jobs((self.train_job, self.history_job))
        # Results still queued from the old project's jobs must not land in the new one.
        self._generation += 1
        self.project = project
        self.last_config = None
        self.last_result = None
        self.estimator.set_project(project)
        self.tracker = None
        self.chart.clear()
        self.results.clear()
        self.progress_bar.setValue(0)
        self._show_message("")
        self.status_label.setText("Ready." if project is not None else "Open a project to train a model.")
        self.run_ended.emit("")
        self.refresh_models()
        self._restore_active_model()
        self.update_estimate()
        self._update_buttons()

    def refresh_models(self) -> None:
        self.models_table.set_models(self.project.models() if self.project is not None else [])

    def set_active_model(self, model_id: int) -> None:
        if self.project is None:
            return
        self.project.set_active_model(model_id)
        self.refresh_models()
        if self.last_result is None or self.last_result.model_id != model_id:
            self._restore_active_model()  # the Results follow the active model
        self.active_model_changed.emit(int(model_id))

    def _restore_active_model(self) -> None:
        """Results, chart and settings of the project's active model, as they were when it was trained."""
        active = self.project.active_model() if self.project is not None else None
        if active is None:
            return
        caption = model_caption(active)
        if active.config:
            try:
                self.last_config = TrainConfig.from_dict(active.config).validate()
            except Exception as exc:  # noqa: BLE001 - an old or odd config: Retrain then uses the form
                log.info("cannot reuse the settings of %s: %s", caption, exc)
        metrics = metrics_of(active)
        if metrics is not None:
            self.results.show_metrics(metrics, caption=caption)
        else:
            self.results.clear(f"{caption}: no test results were stored with this model.")
        self.status_label.setText(f"Active model: {caption}.")
        self._load_history(active)

    def _load_history(self, model: ModelRecord) -> None:
        if not prepare_chart(self.chart, model):
            return
        job = read_history(Path(model.path), self)
        job.finished.connect(self._guarded(lambda history: draw_history(self.chart, history, model.mode)))
        job.failed.connect(self._guarded(lambda msg: self.chart.set_placeholder(f"No chart: {msg}")))
        self.history_job = job

    # -- the estimate ----------------------------------------------------------------------------------
    def update_estimate(self) -> None:
        """Say how long the chosen run will take here, measuring this machine first when needed (only once the
        person looks at the form: measuring costs seconds of CPU)."""
        if self.project is None or self.is_training() or not self.isVisible():
            return
        try:
            config = self.build_config()
        except Exception as exc:  # noqa: BLE001 - the message shows when Start is pressed
            self.estimate_label.setText(f"No estimate: {exc}")
            return
        self.estimate = self.estimator.estimate(config)
        if self.estimate is None:
            label = get_kind(config.model_kind).label
            self.estimate_label.setText(f"Measuring how fast {label} runs on this machine (once, a few seconds)…")
            self.estimate_label.setToolTip("")
            return
        labelled = self.estimator.run_size(config).labelled
        self.estimate_label.setText(f"<b>{self.estimate.summary()}</b> ({labelled} labelled photos)")
        self.estimate_label.setToolTip(self.estimate.breakdown())

    # -- training --------------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.train_job is not None and self.train_job.is_running()

    def is_busy(self) -> bool:
        """A run is going (predicting the project's images after training is part of the run)."""
        return self.is_training()

    def start(self) -> bool:
        """Start training with the settings shown; False (with a message) when it cannot start."""
        try:
            config = self.build_config()
        except Exception as exc:  # noqa: BLE001 - a bad setting is shown, not raised into Qt
            self._show_message(str(exc))
            return False
        return self._start_with(config)

    def retrain(self) -> bool:
        if self.last_config is None:
            return self.start()
        return self._start_with(self.last_config)

    def _start_with(self, config: TrainConfig) -> bool:
        if self.is_busy() or self.stopping:
            return False
        if self.project is None:
            self._show_message("Open a project first: training needs labelled images.")
            return False
        snapshot = self.project.snapshot()
        if len(snapshot.items) < 2:
            self._show_message("Label a few images first: training needs labelled images of each class.")
            return False
        self._show_message("")
        self.last_config = config
        self.last_result = None
        self._truth = {item.image_id: item.class_index for item in snapshot.items}
        checkpoint = new_checkpoint_path(self.project.path, config.model_kind, config.mode)
        worker = TrainWorker(config, snapshot, checkpoint, project_path=self.project.path)
        plan, measured = self.estimator.plan(config)
        self.estimator.pause()
        self.tracker = RunTracker(plan)
        self._planned_seconds = plan.total_seconds if measured else None
        if not measured:
            self.estimate_label.setText("Started before this machine was measured: the time left follows the run.")
        self._prepare_chart(config)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%p%")
        self.status_label.setText(
            f"Starting {get_kind(config.model_kind).label} "
            f"({MODE_LABELS[config.mode]}) on {len(snapshot.items)} images…"
        )
        job = start_worker(worker, name="harapp-train", parent=self)
        job.progressed.connect(self._guarded(self._on_progress))
        job.finished.connect(self._guarded(self._on_finished))
        job.failed.connect(self._guarded(self._on_failed))
        job.cancelled.connect(self._guarded(self._on_cancelled))
        job.done.connect(self._update_buttons)
        self.train_job = job
        self._update_buttons()
        return True

    def _prepare_chart(self, config: TrainConfig) -> None:
        axis = fit_axis(config.mode)
        if axis is None:
            self.chart.clear(placeholder="Zero-shot trains nothing: there is no loss to chart.")
        elif axis == "epoch":
            self.chart.clear(config.epochs, axis, "The line starts with the first epoch.")
        else:  # the solver's step count is known when the fit starts; the axis is set then, once
            self.chart.clear(1, axis, "The line starts when the fit does, after the features.")

    def cancel(self) -> None:
        if self.is_training() and self.train_job is not None:
            self.train_job.cancel()
            self.status_label.setText("Cancelling… the current step finishes first.")
        self._update_buttons()

    def stop_for_quit(self) -> None:
        """The window is closing: stop every job; ``idle`` follows when the last one has ended."""
        self.stopping = True
        self.cancel()
        for job in (self.device_job, self.history_job):
            if job is not None and job.is_running():
                job.cancel()
        self.estimator.pause()
        self._update_buttons()

    def show_stopping(self, text: str) -> None:
        self.status_label.setText(text)

    def _on_progress(self, p: TrainProgress) -> None:
        if self.tracker is None:
            return
        self._show_status(self.tracker.on_train(p))
        mode = self.last_config.mode if self.last_config is not None else ""
        x = chart_x(p, mode)
        if x is None:
            return
        if fit_axis(mode) == "solver step" and self.chart.x_max() < p.steps:
            self.chart.set_epochs(p.steps)  # once, at the fit's first report: the solver's full budget
        # Step reports repeat the previous epoch's accuracy; only the epoch-end report carries this epoch's.
        if p.loss is not None:
            self.chart.add_point(x, p.loss)
        if p.val_accuracy is not None and p.step == p.steps:
            self.chart.set_accuracy(x, p.val_accuracy)

    def _show_status(self, status: RunStatus) -> None:
        self.progress_bar.setFormat(f"{status.phase_label} · %p%")
        self.progress_bar.setValue(int(1000 * status.fraction))
        left = f"about {format_duration(status.eta_seconds)} left" if status.eta_seconds else ""
        parts = [p for p in (status.detail, left) if p]
        self.status_label.setText(f"<b>{status.headline()}</b><br>{' · '.join(parts)}")
        # The same rounding as the bar's %p%, so the two never disagree by a point.
        self.run_progressed.emit(status.fraction, f"{status.phase_label} · {int(1000 * status.fraction) // 10}%")

    def _on_finished(self, result: TrainResult) -> None:
        self.last_result = result
        metrics = result.metrics
        if metrics is not None:
            self.results.show_metrics(metrics, self._truth, caption=self._caption_of(result.model_id))
        self.tabs.setCurrentIndex(0)
        model_id = result.model_id
        if self.project is not None and model_id is not None:
            self.set_active_model(model_id)
            if result.predictions is not None:
                # The training job predicted every project image and stored the predictions itself.
                self.predictions_updated.emit(model_id)
                self.refresh_models()
                count = len(result.predictions.predictions)
                self._end_run(f"Training finished. Predictions stored for {count} images.")
                return
        self.refresh_models()
        self._end_run("Training finished.")

    def _caption_of(self, model_id: int | None) -> str:
        if self.project is None or model_id is None:
            return ""
        record = next((m for m in self.project.models() if m.id == model_id), None)
        return model_caption(record) if record is not None else ""

    def _end_run(self, text: str) -> None:
        tracker = self.tracker
        if tracker is not None and text.startswith("Training finished"):
            self.progress_bar.setFormat("done · %p%")
            self.progress_bar.setValue(1000)
            planned = f" (estimated {format_duration(self._planned_seconds)})" if self._planned_seconds else ""
            text = f"{text} Took {format_duration(tracker.elapsed())}{planned}."
        elif tracker is not None:  # the bar stays where the run stopped, and says so
            self.progress_bar.setFormat(f"{'cancelled' if 'cancelled' in text else 'stopped'} · %p%")
        self.status_label.setText(text)
        # Where the time went, phase by phase, beside the estimate: one hover away.
        self.status_label.setToolTip(tracker.breakdown() if tracker is not None else "")
        self.run_ended.emit(text.split(".")[0])
        self.tracker = None

    def _on_failed(self, message: str) -> None:
        self._show_message(message)
        self._end_run("Training failed.")

    def _on_cancelled(self) -> None:
        self._end_run("Training cancelled; the last good checkpoint (if any) stays on disk.")

    def _guarded(self, slot: Callable[..., None]) -> Callable[..., None]:
        """``slot`` wrapped to do nothing once the panel has moved on to another project."""
        generation = self._generation

        def call(*args: Any) -> None:
            if generation == self._generation:
                slot(*args)

        return call

    # -- state and shutdown ----------------------------------------------------------------------------
    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))

    def message(self) -> str:
        return self.message_label.text()

    def _update_buttons(self) -> None:
        training = self.is_training()
        busy = self.is_busy()
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not busy and not self.stopping)
        self.retrain_button.setEnabled(has_project and not busy and not self.stopping and self.last_config is not None)
        self.cancel_button.setEnabled(busy and not self.stopping)
        self.form.set_running(training)
        self.state_changed.emit()
        if not busy:
            if not training:
                self.update_estimate()
            self.idle.emit()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel running jobs and wait for their threads; True when none is left running."""
        ok = self.estimator.shutdown(timeout_ms)
        return self._stop_jobs((self.train_job, self.device_job, self.history_job), timeout_ms) and ok

    @staticmethod
    def _stop_jobs(jobs: tuple[JobHandle | None, ...], timeout_ms: int = 30_000) -> bool:
        ok = True
        for job in jobs:
            if job is not None and job.is_running():
                ok = job.cancel_and_wait(timeout_ms) and ok
        return ok

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        if self.device_job is None:  # first shown: only now is the device worth the seconds torch takes to load
            self._fill_device()
        # Watch the top-level window: a child gets no closeEvent when its main window closes.
        window = self.window()
        if window is not self and window is not self._watched_window:
            window.installEventFilter(self)
            self._watched_window = window
        super().showEvent(event)
        self.update_estimate()  # measures this machine now that the person looks at the form

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        closing = watched is self._watched_window and event.type() == QEvent.Type.Close and event.isAccepted()
        if closing and not self.window_manages_close:
            self.shutdown()
        return super().eventFilter(watched, event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)
