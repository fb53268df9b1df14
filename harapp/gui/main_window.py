"""The main window: the welcome view, or a project in three modes (Label | Train | Predict), each full-window.

The layout and why it is so: docs/gui-layout.md. This class only assembles the parts and routes between them;
the parts do the work (workspace.py, training_panel.py, prediction_panel.py, key_router.py, close_guard.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QWidget,
)

from harapp.core.errors import HarappError
from harapp.core.image_files import is_image_name
from harapp.core.paths import config_dir, remember_project
from harapp.core.store import Project
from harapp.gui.class_editor import ClassEditor
from harapp.gui.close_guard import CloseGuard
from harapp.gui.demo_job import create_demo
from harapp.gui.drop_overlay import DropOverlay, drop_action_text, dropped_paths
from harapp.gui.import_dialog import ImportDialog
from harapp.gui.import_worker import DialogImportKind
from harapp.gui.key_router import KeyRouter
from harapp.gui.main_menus import build_menus, shortcut_rows
from harapp.gui.modes import Mode, ModeTabs
from harapp.gui.prediction_panel import PredictionPanel
from harapp.gui.shortcuts_overlay import ShortcutsOverlay
from harapp.gui.training_panel import TrainingPanel
from harapp.gui.welcome import WelcomeView
from harapp.gui.workers import JobHandle, Worker, start_worker
from harapp.gui.workspace import Workspace
from harapp.ml.defaults import preferred_device

log = logging.getLogger(__name__)
DEFAULT_SIZE = (1400, 900)
STATUS_MS = 6000


def window_settings() -> QSettings:
    # An ini file beside settings.json: tests point the config dir at a temp folder, so they never touch ours.
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class MainWindow(QMainWindow):
    project_changed = Signal(object)
    """The open Project, or None."""

    def __init__(self, project_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self._jobs: list[JobHandle] = []
        self._closing = False
        self.setAcceptDrops(True)
        self.welcome = WelcomeView()
        self.workspace = Workspace()
        self.training_panel = TrainingPanel()
        self.training_panel.window_manages_close = True  # close_guard.py asks, stops and closes without a freeze
        self.prediction_panel = PredictionPanel()
        # The window takes every drop (one highlight, one behaviour), the Predict page included.
        self.prediction_panel.setAcceptDrops(False)
        self.modes = ModeTabs(self.workspace, self.training_panel, self.prediction_panel)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.modes)
        self.setCentralWidget(self.stack)
        self.drop_overlay = DropOverlay(self.stack)
        self.overlay = ShortcutsOverlay(self)
        self.actions_by_name = build_menus(self)
        self.keys = KeyRouter(
            self,
            self.workspace.labeling,
            self.workspace.gallery,
            own_keys=self._labels_by_itself,
            label_mode_shown=self.label_mode_shown,
            blocked=self.overlay.isVisible,
        )
        self.close_guard = CloseGuard(self, self.training_panel)
        self._wire()
        self.statusBar().showMessage("Ready")
        self._restore_geometry()
        self._update_title()
        self._show_view()
        if project_path is not None:
            self.open_project(project_path)

    def _wire(self) -> None:
        self.welcome.open_requested.connect(self.open_project_dialog)
        self.welcome.import_coco_requested.connect(lambda: self.import_dialog("coco"))
        self.welcome.import_folder_requested.connect(lambda: self.import_dialog("folder"))
        self.welcome.demo_requested.connect(self.create_demo)
        self.welcome.recent_requested.connect(self.open_project)
        self.workspace.status_message.connect(self.show_status)
        self.keys.message.connect(self.show_status)
        self.close_guard.status.connect(self._show_stopping)
        panel = self.training_panel
        panel.confusion_cell_clicked.connect(self.show_confusion_cell)
        panel.active_model_changed.connect(self.workspace.reload_predictions)
        panel.predictions_updated.connect(self.workspace.reload_predictions)
        panel.predictions_updated.connect(lambda _id: self.workspace.refresher.refresh_now())
        refresher = self.workspace.refresher
        refresher.is_training = panel.is_busy
        panel.state_changed.connect(lambda: refresher.training_started() if panel.is_busy() else None)
        refresher.device = lambda: str(self.training_panel.config_overrides.get("device") or preferred_device())
        refresher.refreshed.connect(lambda _outcome: panel.refresh_models())  # a retrained model's new metrics
        refresher.refreshed.connect(lambda _outcome: self.prediction_panel.refresh_model())
        panel.active_model_changed.connect(self.prediction_panel.refresh_model)
        panel.run_progressed.connect(self.modes.run_indicator.show_progress)
        panel.run_ended.connect(self.modes.run_indicator.show_text)
        panel.state_changed.connect(self._update_actions)
        self.modes.mode_changed.connect(self._on_mode_changed)

    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_MS)

    # -- modes ---------------------------------------------------------------------------------------------

    def set_mode(self, mode: Mode) -> None:
        if self.project is None:
            self.show_status("Open or import a project first.")
            return
        self.modes.set_mode(mode)

    def label_mode_shown(self) -> bool:
        return self.project is not None and self.stack.currentWidget() is self.modes and self.modes.mode() == Mode.LABEL

    def _labels_by_itself(self, widget: QWidget) -> bool:
        """The gallery and the image view have the labelling filter installed themselves."""
        return widget is self.workspace.gallery or self.workspace.inspector.isAncestorOf(widget)

    def _on_mode_changed(self, index: int) -> None:
        if index == Mode.LABEL and self.project is not None:
            self.workspace.gallery.setFocus()  # keys go to the photos the moment the person comes back

    # -- projects ------------------------------------------------------------------------------------------

    def open_project(self, path: Path | str) -> bool:
        path = Path(path)
        try:
            project = Project.open(path)
        except HarappError as exc:
            QMessageBox.warning(self, "Cannot open project", str(exc))
            return False
        self._set_project(project)
        try:
            remember_project(path)
        except OSError as exc:  # the recent list is a convenience; never stop opening for it
            log.warning("could not save the recent projects list: %s", exc)
        self.show_status(f"Opened {path}")
        return True

    def close_project(self) -> None:
        self._set_project(None)

    def _set_project(self, project: Project | None) -> None:
        old = self.project
        self.project = project
        self.workspace.set_project(project)
        self.training_panel.set_project(project)
        self.prediction_panel.set_project(project)
        self.overlay.set_keys(self.workspace.labeling.class_keys(), shortcut_rows(self))
        if old is not None:
            old.close()
        self._update_title()
        self._show_view()
        self.project_changed.emit(project)

    def reload_classes(self) -> None:
        """The class list changed (class editor): every view that names classes reads them again."""
        self.workspace.reload()
        self.training_panel.refresh_models()
        self.prediction_panel.refresh_model()
        self.overlay.set_keys(self.workspace.labeling.class_keys(), shortcut_rows(self))

    def _show_view(self) -> None:
        has_project = self.project is not None
        self.stack.setCurrentWidget(self.modes if has_project else self.welcome)
        if not has_project and not self._closing:
            self.welcome.refresh()
        else:
            self.modes.set_mode(Mode.LABEL)
            self.workspace.gallery.setFocus()
        self._update_actions()

    def _update_actions(self) -> None:
        has_project = self.project is not None
        for name in (
            "close",
            "label_menu",
            "find",
            "classes",
            "clear_label",
            "mode_label",
            "mode_train",
            "mode_predict",
        ):
            if name in self.actions_by_name:
                self.actions_by_name[name].setEnabled(has_project)
        panel = self.training_panel
        self.actions_by_name["train"].setEnabled(panel.start_button.isEnabled())
        self.actions_by_name["retrain"].setEnabled(panel.retrain_button.isEnabled())
        self.actions_by_name["cancel_training"].setEnabled(panel.cancel_button.isEnabled())

    def _update_title(self) -> None:
        if self.project is None:
            self.setWindowTitle("harapp")
            self.setWindowFilePath("")
            return
        stats = f" — {self.workspace.model.rowCount()} images"
        self.setWindowTitle(f"{self.project.path.name}{stats} — harapp")
        self.setWindowFilePath(str(self.project.path))

    def open_project_dialog(self) -> None:
        start = str(self.project.path.parent) if self.project else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open project", start, "harapp projects (*.harapp);;All files (*)")
        if path:
            self.open_project(Path(path))

    def new_project_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New empty project", str(Path.home()), "harapp projects (*.harapp)")
        if not path:
            return
        target = Path(path if path.endswith(".harapp") else path + ".harapp")
        try:
            Project.create(target).close()
        except HarappError as exc:
            QMessageBox.warning(self, "Cannot create project", str(exc))
            return
        self.open_project(target)

    # -- imports and the demo ------------------------------------------------------------------------------

    def import_dialog(self, kind: DialogImportKind) -> ImportDialog:
        dialog = ImportDialog(kind, self.project.path if self.project else None, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.imported.connect(self._after_import)
        dialog.open()
        return dialog

    def _after_import(self, path: Path) -> None:
        if self.project is not None and Path(path).resolve() == self.project.path.resolve():
            self.workspace.reload()
            self._update_title()
        else:
            self.open_project(path)

    def create_demo(self, n_images: int | None = None) -> JobHandle | None:
        """Open the offline demo project, generating it first (in the background) when it does not exist."""
        return create_demo(self, n_images)

    def start_job(self, worker: Worker, name: str) -> JobHandle:
        """Run a window-level job (the demo); closing the window cancels and waits for it."""
        handle = start_worker(worker, name=name, parent=self)
        self._jobs.append(handle)
        handle.done.connect(lambda: self._jobs.remove(handle) if handle in self._jobs else None)
        return handle

    def running_jobs(self) -> list[JobHandle]:
        return [h for h in self._jobs if h.is_running()]

    # -- other actions -------------------------------------------------------------------------------------

    def show_confusion_cell(self, true_class: str, predicted_class: str, image_ids: list) -> None:
        text = f"labelled {true_class}, predicted {predicted_class}: {len(image_ids)} images"
        short = f"{true_class} → {predicted_class} ({len(image_ids)})"
        self.workspace.show_image_set([int(i) for i in image_ids], text, short)
        self.modes.set_mode(Mode.LABEL)
        self.show_status(f"Confusion-matrix cell: {text}")

    def edit_classes(self) -> ClassEditor | None:
        if self.project is None:
            self.show_status("Open a project first: classes belong to a project.")
            return None
        dialog = ClassEditor(
            self.project, self.workspace.labeling.undo_stack, self.reload_classes, self.show_status, self
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    def show_shortcuts(self) -> None:
        self.overlay.set_keys(self.workspace.labeling.class_keys(), shortcut_rows(self))
        self.overlay.show_over_parent()

    def start_training(self) -> None:
        if self.project is not None:
            self.modes.set_mode(Mode.TRAIN)
        self.training_panel.start()

    def paste(self) -> None:
        """Ctrl+V anywhere (outside a text field): predict the photo on the clipboard."""
        if self.project is None:
            self.show_status("Open a project with a trained model first: then Ctrl+V predicts a pasted photo.")
            return
        self.modes.set_mode(Mode.PREDICT)
        self.prediction_panel.paste()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About harapp",
            "harapp: human activity recognition in still photos.\n"
            "Curate caption-derived labels, train a classifier, predict on new photos.",
        )

    # -- drops: anywhere on the window, with a highlight that says what the drop will do ----------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        text = drop_action_text(event.mimeData(), self.project is not None)
        if text is None:
            event.ignore()
            return
        self.drop_overlay.show_for(text)
        event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        event.acceptProposedAction()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:  # noqa: N802 - Qt API
        self.drop_overlay.hide()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        self.drop_overlay.hide()
        mime = event.mimeData()
        paths = dropped_paths(mime)
        projects = [p for p in paths if p.suffix == ".harapp"]
        if projects:
            self.open_project(projects[0])
        elif self.project is None:
            self.show_status("Open a project with a trained model first: then drop photos to predict them.")
        elif paths:
            self.modes.set_mode(Mode.PREDICT)
            self.prediction_panel.predict_paths([p for p in paths if is_image_name(p)] or paths)
        elif mime.hasImage():
            self.modes.set_mode(Mode.PREDICT)
            self.prediction_panel.take_mime(mime)
        event.acceptProposedAction()

    # -- geometry and closing -----------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        settings = window_settings()
        geometry = settings.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            screen = QGuiApplication.primaryScreen()
            room = screen.availableGeometry().size() if screen is not None else None
            width, height = DEFAULT_SIZE
            if room is not None and room.width() > 0:  # a first start on a laptop: fit, do not overflow
                width, height = min(width, room.width()), min(height, room.height())
            self.resize(width, height)
        splitter = settings.value("label_splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.workspace.splitter.restoreState(splitter)

    def save_geometry(self) -> None:
        settings = window_settings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("label_splitter", self.workspace.splitter.saveState())
        settings.sync()

    def _show_stopping(self, text: str) -> None:
        self.statusBar().showMessage(text)  # stays until the window closes
        self.training_panel.show_stopping(text)
        self.modes.run_indicator.show_text("Stopping…")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self.close_guard.allow_close():
            event.ignore()
            return
        self._closing = True
        self.save_geometry()
        for handle in list(self._jobs):
            handle.cancel_and_wait()
        self.training_panel.shutdown()
        self.prediction_panel.shutdown()
        self.workspace.shutdown()
        self.welcome.shutdown()
        self.keys.detach()
        self._set_project(None)
        super().closeEvent(event)
