"""The main window: welcome view or workspace in the middle, training and prediction docked below."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QStackedWidget,
    QWidget,
)

from harapp.core.errors import HarappError
from harapp.core.image_files import is_image_name
from harapp.core.importers.summary import ImportSummary
from harapp.core.paths import config_dir, demo_project_path, remember_project
from harapp.core.store import Project
from harapp.gui.import_dialog import ImportDialog
from harapp.gui.import_worker import DialogImportKind, ImportProgress, ImportRequest, ImportWorker
from harapp.gui.main_menus import build_menus
from harapp.gui.prediction_panel import PredictionPanel
from harapp.gui.shortcuts_overlay import ShortcutsOverlay
from harapp.gui.training_panel import TrainingPanel
from harapp.gui.welcome import WelcomeView
from harapp.gui.workers import JobHandle, start_worker
from harapp.gui.workspace import Workspace

log = logging.getLogger(__name__)


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
        self._docks_wanted: dict[str, bool] | None = None
        self.setAcceptDrops(True)
        self.welcome = WelcomeView()
        self.workspace = Workspace()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.workspace)
        self.setCentralWidget(self.stack)
        self.training_panel = TrainingPanel()
        self.prediction_panel = PredictionPanel()
        self.train_dock = self._dock("Train", "train", self.training_panel)
        self.predict_dock = self._dock("Predict", "predict", self.prediction_panel)
        self.splitDockWidget(self.train_dock, self.predict_dock, Qt.Orientation.Horizontal)
        self.overlay = ShortcutsOverlay(self)
        self.actions_by_name = build_menus(self)
        self._wire()
        self.statusBar().showMessage("Ready")
        self._restore_geometry()
        self._update_title()
        self._show_view()
        if project_path is not None:
            self.open_project(project_path)

    def _dock(self, title: str, name: str, panel: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{name}_dock")
        dock.setWidget(panel)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return dock

    def _wire(self) -> None:
        self.welcome.open_requested.connect(self.open_project_dialog)
        self.welcome.import_coco_requested.connect(lambda: self.import_dialog("coco"))
        self.welcome.import_folder_requested.connect(lambda: self.import_dialog("folder"))
        self.welcome.demo_requested.connect(self.create_demo)
        self.welcome.recent_requested.connect(self.open_project)
        self.workspace.status_message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        panel = self.training_panel
        panel.confusion_cell_clicked.connect(self.show_confusion_cell)
        panel.active_model_changed.connect(self.workspace.reload_predictions)
        panel.predictions_updated.connect(self.workspace.reload_predictions)
        panel.active_model_changed.connect(self.prediction_panel.refresh_model)

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
        self.statusBar().showMessage(f"Opened {path}", 5000)
        return True

    def close_project(self) -> None:
        self._set_project(None)

    def _set_project(self, project: Project | None) -> None:
        old = self.project
        self.project = project
        self.workspace.set_project(project)
        self.training_panel.set_project(project)
        self.prediction_panel.set_project(project)
        self.overlay.set_keys(self.workspace.labeling.class_keys())
        if old is not None:
            old.close()
        self._update_title()
        self._show_view()
        self.project_changed.emit(project)

    def _show_view(self) -> None:
        has_project = self.project is not None
        self.stack.setCurrentWidget(self.workspace if has_project else self.welcome)
        if not has_project:
            self.welcome.refresh()
        self._show_docks(has_project)
        for name in ("close", "train", "label_menu", "find"):
            if name in self.actions_by_name:
                self.actions_by_name[name].setEnabled(has_project)
        if has_project:
            self.workspace.gallery.setFocus()

    def _show_docks(self, show: bool) -> None:
        """Training and prediction need a project: hide their docks on the welcome view, and bring back
        the ones the person had open (their choice is what the saved window state keeps)."""
        docks = (self.train_dock, self.predict_dock)
        if show and self._docks_wanted is not None:
            for dock in docks:
                dock.setVisible(self._docks_wanted.get(dock.objectName(), True))
            self._docks_wanted = None
        elif not show and self._docks_wanted is None:
            self._docks_wanted = {dock.objectName(): not dock.isHidden() for dock in docks}
            for dock in docks:
                dock.hide()

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
        path = demo_project_path()
        if path.exists():
            self.open_project(path)
            return None
        dialog = QProgressDialog("Creating the demo project…", "Cancel", 0, 0, self)
        dialog.setWindowTitle("Demo project")
        dialog.setMinimumDuration(0)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        worker = ImportWorker(ImportRequest("demo", path, demo_images=n_images))

        def progressed(p: ImportProgress) -> None:
            dialog.setLabelText(f"{p.stage.capitalize()}… {p.done} of {p.total}" if p.total else p.stage)
            dialog.setRange(0, p.total)
            dialog.setValue(p.done)

        def finished(summary: ImportSummary) -> None:
            dialog.close()
            self.open_project(summary.project_path)

        def failed(message: str) -> None:
            dialog.close()
            QMessageBox.warning(self, "Demo project", f"The demo project could not be created.\n\nCause: {message}")

        handle = self._start(worker, "harapp-demo")
        # Connected to the handle, which relays on the GUI thread: these closures touch widgets.
        handle.progressed.connect(progressed)
        handle.finished.connect(finished)
        handle.failed.connect(failed)
        handle.cancelled.connect(dialog.close)
        dialog.canceled.connect(handle.cancel)
        dialog.show()
        return handle

    def _start(self, worker: ImportWorker, name: str) -> JobHandle:
        handle = start_worker(worker, name=name, parent=self)
        self._jobs.append(handle)
        handle.done.connect(lambda: self._jobs.remove(handle) if handle in self._jobs else None)
        return handle

    def running_jobs(self) -> list[JobHandle]:
        return [h for h in self._jobs if h.is_running()]

    # -- other actions -------------------------------------------------------------------------------------

    def show_confusion_cell(self, true_class: str, predicted_class: str, image_ids: list) -> None:
        text = f"Confusion cell: labelled {true_class}, predicted {predicted_class} ({len(image_ids)} images)"
        self.workspace.show_image_set([int(i) for i in image_ids], text)
        self.statusBar().showMessage(text, 5000)

    def show_shortcuts(self) -> None:
        self.overlay.set_keys(self.workspace.labeling.class_keys())
        self.overlay.show_over_parent()

    def start_training(self) -> None:
        self.train_dock.show()
        self.training_panel.start()

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About harapp",
            "harapp: human activity recognition in still photos.\n"
            "Curate caption-derived labels, train a classifier, predict on new photos.",
        )

    # -- drops go to the prediction panel -------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        projects = [p for p in paths if p.suffix == ".harapp"]
        if projects:
            self.open_project(projects[0])
        elif paths:
            self.predict_dock.show()
            self.prediction_panel.predict_paths([p for p in paths if is_image_name(p)] or paths)
        event.acceptProposedAction()

    # -- geometry and closing -----------------------------------------------------------------------------

    def _restore_geometry(self) -> None:
        settings = window_settings()
        geometry = settings.value("geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        state = settings.value("state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        else:
            # First start: the curation area gets most of the height, the docks what they need.
            self.resizeDocks([self.train_dock], [300], Qt.Orientation.Vertical)

    def save_geometry(self) -> None:
        settings = window_settings()
        settings.setValue("geometry", self.saveGeometry())
        self._show_docks(True)  # save the person's dock choice, not the welcome view's hidden docks
        settings.setValue("state", self.saveState())
        settings.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.save_geometry()
        for handle in list(self._jobs):
            handle.cancel_and_wait()
        self.training_panel.shutdown()
        self.prediction_panel.shutdown()
        self.workspace.shutdown()
        self._set_project(None)
        super().closeEvent(event)
