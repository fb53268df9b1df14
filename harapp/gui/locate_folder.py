"""'Locate folder…': point an import whose photos moved at their new folder; and the note in the status bar
that says, whenever a project is opened, that photos are missing or that the project is read-only.

Self-contained on purpose: the main window only gets a menu entry and `attach(window)` (see main_menus).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from harapp.core.errors import HarappError
from harapp.core.leftovers import clean_stale_temporaries, unregistered_checkpoints
from harapp.core.store import Project

if TYPE_CHECKING:
    from harapp.gui.main_window import MainWindow

log = logging.getLogger(__name__)


def project_note(project: Project) -> str:
    """What the person should know about the project's files, in one line ('' when nothing)."""
    parts = []
    if project.readonly_reason:
        parts.append(f"Read-only: {project.readonly_reason}")
    missing = sum(m for m, _ in project.missing_by_source().values())
    if missing:
        total = project.count_images()
        parts.append(f"{missing} of {total} photos are missing on disk — Locate folder…")
    return " · ".join(parts)


class LocateFolderDialog(QDialog):
    """Lists the project's imports with how many of their photos are missing; the person picks one, chooses
    the folder the photos are in now, sees how many are found there, and applies."""

    located = Signal(int)
    """The id of the import source that now points at its new folder."""

    def __init__(self, project: Project, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Locate folder")
        self.project = project
        self.new_root: Path | None = None
        intro = QLabel(
            "If you moved or renamed the folder of an import, pick the import and the folder its photos are in "
            "now. Labels, persons and history stay as they are."
        )
        intro.setWordWrap(True)
        self.sources = QListWidget()
        counts = project.missing_by_source()
        for source in project.sources():
            missing, total = counts.get(source["id"], (0, 0))
            state = f"{missing} of {total} missing" if missing else f"all {total} found"
            item = QListWidgetItem(f"{source['root']}  ({source['kind']}, {state})")
            item.setData(256, source["id"])  # Qt.UserRole
            self.sources.addItem(item)
            if missing and self.sources.currentRow() < 0:
                self.sources.setCurrentItem(item)
        if self.sources.currentRow() < 0 and self.sources.count():
            self.sources.setCurrentRow(0)
        self.browse = QPushButton("Choose the new folder…")
        self.browse.clicked.connect(self._browse)
        self.preview = QLabel("")
        self.preview.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.apply)
        self.buttons.rejected.connect(self.reject)
        self._ok().setEnabled(False)
        self.sources.currentRowChanged.connect(lambda _row: self.choose_folder(self.new_root))
        layout = QVBoxLayout(self)
        for widget in (intro, self.sources, self.browse, self.preview, self.buttons):
            layout.addWidget(widget)
        if project.readonly:
            self.preview.setText(f"The project is read-only ({project.readonly_reason}): nothing can be changed.")
            self.browse.setEnabled(False)

    def _ok(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def source_id(self) -> int | None:
        item = self.sources.currentItem()
        return int(item.data(256)) if item is not None else None

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The folder the photos are in now")
        if folder:
            self.choose_folder(Path(folder))

    def choose_folder(self, folder: Path | None) -> None:
        """Show how many of the chosen import's photos the folder holds; OK only when it holds some."""
        self.new_root = folder
        source = self.source_id()
        if folder is None or source is None:
            self._ok().setEnabled(False)
            return
        found, total = self.project.source_files_under(source, folder)
        self.preview.setText(f"{found} of {total} photos of this import are in {folder}.")
        self._ok().setEnabled(found > 0 and not self.project.readonly)

    def apply(self) -> None:
        source = self.source_id()
        if source is None or self.new_root is None:
            return
        try:
            self.project.relocate_source(source, self.new_root)
        except HarappError as exc:
            self.preview.setText(str(exc))
            return
        self.located.emit(source)
        self.accept()


def open_dialog(window: MainWindow) -> LocateFolderDialog | None:
    """File ▸ Locate folder…: the dialog for the open project; the gallery reloads once a folder is located."""
    project = window.project
    if project is None:
        window.statusBar().showMessage("Open a project first: Locate folder… repairs an import of that project.", 5000)
        return None
    dialog = LocateFolderDialog(project, window)

    def located(_source: int) -> None:
        window.workspace.reload()
        _refresh_note(window, project)
        window.statusBar().showMessage("Photos located; the project now points at their new folder.", 5000)

    dialog.located.connect(located)
    dialog.open()
    return dialog


def attach(window: MainWindow) -> None:
    """A note in the status bar, refreshed whenever a project is opened: missing photos (click to locate
    them) and read-only projects. Opening also tidies what killed training runs left (see core/leftovers)."""
    note = QPushButton("")
    note.setObjectName("project_note")
    note.setFlat(True)
    note.setVisible(False)
    note.clicked.connect(lambda: open_dialog(window))
    window.statusBar().addPermanentWidget(note)
    window.project_changed.connect(lambda project: _opened(window, project))


def _note_button(window: MainWindow) -> QPushButton | None:
    return window.statusBar().findChild(QPushButton, "project_note")


def _refresh_note(window: MainWindow, project: Project | None) -> None:
    button = _note_button(window)
    if button is None:
        return
    text = project_note(project) if project is not None else ""
    button.setText(text)
    button.setToolTip("Click to point the project at the folder its photos are in now" if "missing" in text else "")
    button.setVisible(bool(text))


def _opened(window: MainWindow, project: Project | None) -> None:
    _refresh_note(window, project)
    if project is None or project.readonly:
        return
    clean_stale_temporaries(project.path)
    if not unregistered_checkpoints(project):
        return
    # Reading checkpoints needs torch: imported only when a killed run left one behind.
    from harapp.ml.checkpoint import adopt_leftovers

    try:
        _, registered = adopt_leftovers(project)
    except HarappError as exc:
        log.warning("could not register checkpoints left by earlier runs: %s", exc)
        return
    if registered:
        window.training_panel.refresh_models()
        window.statusBar().showMessage(f"Registered {len(registered)} checkpoints that earlier runs left.", 8000)
