"""The training panel: choose a model, train it in the background, watch it learn, pick the active model.

Training runs in a TrainWorker on its own thread with a frozen TrainConfig and LabelSnapshot taken here on
the GUI thread. After a run on a project, a second job predicts every project image so the gallery can show
model predictions and disagreements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from harapp.core.paths import new_checkpoint_path
from harapp.core.store import Project
from harapp.gui.chart import TrainingChart
from harapp.gui.confusion_view import ConfusionMatrixView
from harapp.gui.icons import icon
from harapp.gui.models_table import ModelsTable
from harapp.gui.style import ErrorTextStyle
from harapp.gui.train_form import TrainForm, format_eta
from harapp.gui.workers import JobHandle, TrainWorker, run_callable, start_worker
from harapp.ml.config import TrainConfig
from harapp.ml.defaults import preferred_device
from harapp.ml.kinds import MODE_LABELS, get_kind
from harapp.ml.progress import TrainProgress

if TYPE_CHECKING:
    from harapp.ml.trainer import TrainResult

log = logging.getLogger(__name__)


class TrainingPanel(QWidget):
    active_model_changed = Signal(int)
    confusion_cell_clicked = Signal(str, str, list)
    predictions_updated = Signal(int)
    """Emitted with the model id once the project's images have fresh predictions stored."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.config_overrides: dict[str, Any] = {}
        """Extra TrainConfig fields (tests: tiny image size, CPU device; power users: seeds, folds)."""
        self.train_job: JobHandle | None = None
        self.predict_job: JobHandle | None = None
        self.device_job: JobHandle | None = None
        self.last_config: TrainConfig | None = None
        self.last_result: TrainResult | None = None
        self._truth: dict[int, int] = {}
        self._watched_window: QWidget | None = None
        self._generation = 0
        self._build()
        self._update_buttons()

    # -- construction ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.form = TrainForm(self)
        # Shortcuts for tests and the main window's menus.
        self.kind_combo, self.mode_combo = self.form.kind_combo, self.form.mode_combo
        self.epochs_spin, self.batch_spin, self.lr_spin = self.form.epochs_spin, self.form.batch_spin, self.form.lr_spin

        self.start_button = QPushButton("&Start training", self)
        self.cancel_button = QPushButton("&Cancel", self)
        self.retrain_button = QPushButton("&Retrain", self)
        self.retrain_button.setToolTip("Train the last configuration again on the current labels")
        for button, name in (
            (self.start_button, "train"),
            (self.cancel_button, "cancel"),
            (self.retrain_button, "retrain"),
        ):
            button.setIcon(icon(name))
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.retrain_button.clicked.connect(self.retrain)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.cancel_button, self.retrain_button):
            buttons.addWidget(b)

        self.progress_bar = QProgressBar(self, minimum=0, maximum=1000)
        self.progress_bar.setFormat("%p%")
        self.progress_bar.setValue(0)
        self.status_label = QLabel("Open a project to train a model.", self)
        self.status_label.setWordWrap(True)
        self.message_label = QLabel("", self)
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ErrorTextStyle(self.message_label, bold=True)
        self.message_label.hide()
        self.metrics_label = QLabel("", self)
        self.metrics_label.setWordWrap(True)

        controls = QWidget(self)
        left = QVBoxLayout(controls)
        left.addWidget(self.form)
        left.addLayout(buttons)
        left.addWidget(self.progress_bar)
        left.addWidget(self.status_label)
        left.addWidget(self.message_label)
        left.addStretch(1)

        self.chart = TrainingChart(self)
        self.confusion = ConfusionMatrixView(self)
        self.confusion.cell_clicked.connect(self.confusion_cell_clicked)
        results = QWidget(self)
        results_layout = QVBoxLayout(results)
        results_layout.addWidget(self.metrics_label)
        results_layout.addWidget(self.confusion, 1)
        self.models_table = ModelsTable(self)
        self.models_table.activate_requested.connect(self.set_active_model)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(results, "Results")
        self.tabs.addTab(self.models_table, "Models")

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(controls)
        splitter.addWidget(self.chart)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(1, 2)
        splitter.setStretchFactor(2, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(splitter)

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
        self._stop_jobs((self.train_job, self.predict_job))
        # Results still queued from the old project's jobs must not land in the new one.
        self._generation += 1
        self.project = project
        self.last_config = None
        self.chart.clear()
        self.confusion.set_metrics(None)
        self.metrics_label.setText("")
        self._show_message("")
        self.status_label.setText("Ready." if project is not None else "Open a project to train a model.")
        self.refresh_models()
        self._update_buttons()

    def refresh_models(self) -> None:
        self.models_table.set_models(self.project.models() if self.project is not None else [])

    def set_active_model(self, model_id: int) -> None:
        if self.project is None:
            return
        self.project.set_active_model(model_id)
        self.refresh_models()
        self.active_model_changed.emit(int(model_id))

    # -- training --------------------------------------------------------------------------------------
    def is_training(self) -> bool:
        return self.train_job is not None and self.train_job.is_running()

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
        if self.is_training():
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
        self._truth = {item.image_id: item.class_index for item in snapshot.items}
        checkpoint = new_checkpoint_path(self.project.path, config.model_kind, config.mode)
        worker = TrainWorker(config, snapshot, checkpoint, project_path=self.project.path)
        self.chart.clear(config.epochs)
        self.progress_bar.setValue(0)
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

    def cancel(self) -> None:
        if self.is_training() and self.train_job is not None:
            self.train_job.cancel()
            self.status_label.setText("Cancelling…")
        if self.predict_job is not None and self.predict_job.is_running():
            self.predict_job.cancel()
        self._update_buttons()

    def _on_progress(self, p: TrainProgress) -> None:
        self.progress_bar.setValue(int(1000 * max(0.0, min(1.0, p.fraction))))
        phase = {"embedding": "Computing features", "training": "Training", "evaluating": "Evaluating"}.get(
            p.phase, str(p.phase).capitalize()
        )
        parts = [
            f"{phase}: epoch {p.epoch}/{p.epochs}" if p.phase == "training" else f"{phase}",
            f"step {p.step}/{p.steps}",
            f"{p.images_per_second:.1f} images/s",
            f"ETA {format_eta(p.eta_seconds)}",
        ]
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        if p.val_accuracy is not None:
            parts.append(f"val. acc. {100 * p.val_accuracy:.1f}%")
        self.status_label.setText(" · ".join(parts))
        if p.phase == "training":
            self.chart.set_epochs(p.epochs)
            # Epochs count from 1; a loss point at (epoch - 1 + step/steps) draws the line during each epoch.
            if p.loss is not None:
                self.chart.add_point((p.epoch - 1) + (p.step / p.steps if p.steps else 1.0), p.loss)
            # Step reports repeat the previous epoch's accuracy; only the epoch-end report (step == steps)
            # carries this epoch's value.
            if p.val_accuracy is not None and p.step == p.steps:
                self.chart.set_accuracy(p.epoch, p.val_accuracy)

    def _on_finished(self, result: TrainResult) -> None:
        self.last_result = result
        self.progress_bar.setValue(1000)
        metrics = result.metrics
        if metrics is not None:
            self.confusion.set_metrics(metrics, self._truth)
            self.metrics_label.setText(
                f"Test accuracy {100 * metrics.accuracy:.1f}% · macro F1 {100 * metrics.macro_f1:.1f}% "
                f"on {len(metrics.test_image_ids)} held-out images. Click a cell to show its images."
            )
        self.status_label.setText("Training finished.")
        self.tabs.setCurrentIndex(0)
        model_id = result.model_id
        if self.project is not None and model_id is not None:
            self.set_active_model(model_id)
            if result.predictions is not None:
                # The training job predicted every project image and stored the predictions itself.
                count = len(result.predictions.predictions)
                self.status_label.setText(f"Training finished. Predictions stored for {count} images.")
                self.predictions_updated.emit(model_id)
        else:
            self.refresh_models()

    def _on_failed(self, message: str) -> None:
        self.status_label.setText("Training failed.")
        self._show_message(message)

    def _on_cancelled(self) -> None:
        self.status_label.setText("Training cancelled.")

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
        has_project = self.project is not None
        self.start_button.setEnabled(has_project and not training)
        self.retrain_button.setEnabled(has_project and not training and self.last_config is not None)
        busy = training or (self.predict_job is not None and self.predict_job.is_running())
        self.cancel_button.setEnabled(busy)
        self.form.set_running(training)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel running jobs and wait for their threads; True when none is left running."""
        return self._stop_jobs((self.train_job, self.predict_job, self.device_job), timeout_ms)

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

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._watched_window and event.type() == QEvent.Type.Close and event.isAccepted():
            self.shutdown()
        return super().eventFilter(watched, event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.shutdown()
        super().closeEvent(event)
