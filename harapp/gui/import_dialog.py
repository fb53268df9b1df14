"""The import dialog: choose a COCO download or an image folder, watch progress, read the summary.

With a project open, the dialog asks where the images go -- into that project, or into a new one (with
Browse) -- instead of silently adding real photos to whatever is open (the demo, say). For the demo project
the choice starts on "a new project"; otherwise the person picks.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from harapp.core.importers.summary import ImportSummary
from harapp.core.paths import data_dir, demo_project_path
from harapp.gui.import_worker import DialogImportKind, ImportProgress, ImportRequest, ImportWorker
from harapp.gui.workers import JobHandle, start_worker


def _path_row(edit: QLineEdit, browse) -> QWidget:  # noqa: ANN001 - a slot
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    layout.addWidget(button)
    return row


def _path_row_with(lead: QWidget, edit: QLineEdit, browse) -> QWidget:  # noqa: ANN001 - a slot
    row = _path_row(edit, browse)
    row.layout().insertWidget(0, lead)  # type: ignore[union-attr]
    return row


def suggested_project_path(source: Path) -> Path:
    """A new project file in the user data folder named after the dataset, never overwriting one."""
    base = data_dir() / f"{source.name or 'project'}.harapp"
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.stem}-{n}.harapp")
        n += 1
    return candidate


class ImportDialog(QDialog):
    """Runs one import in the background; emits ``imported`` with the project path when it succeeded."""

    imported = Signal(object)

    def __init__(self, kind: DialogImportKind, project_path: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        if kind not in ("coco", "folder"):
            raise ValueError(f"unknown import kind {kind!r}")
        self.kind = kind
        self._fixed_project = project_path
        self._handle: JobHandle | None = None
        self.summary: ImportSummary | None = None
        self.error_text = ""
        self.setWindowTitle("Import COCO dataset" if kind == "coco" else "Import image folder")
        self.setMinimumWidth(560)

        self.source = QLineEdit()
        self.images_dir = QLineEdit()
        self.annotations = QLineEdit()
        self.all_images = QCheckBox("Also import images without a person")
        self.layout_box = QComboBox()
        for value, text in (
            ("auto", "Detect"),
            ("imagefolder", "One sub-folder per class"),
            ("flat", "Unlabelled images"),
        ):
            self.layout_box.addItem(text, value)
        self.project = QLineEdit()
        self.project.setToolTip("The project file the images go into (created when it does not exist)")
        self.into_open = QRadioButton(f"the open project, {project_path.name}" if project_path else "")
        self.into_open.setToolTip(f"Add the images to {project_path}" if project_path else "")
        self.into_new = QRadioButton("a new project:")
        self.into_new.setToolTip("Make a new project file for these images; the open project stays as it is")
        self.target_group = QButtonGroup(self)
        self.target_group.addButton(self.into_open)
        self.target_group.addButton(self.into_new)
        form = QFormLayout()
        if kind == "coco":
            self.source.setToolTip("A COCO folder holding val2017/ (or train2017/) and annotations/")
            form.addRow("COCO folder", _path_row(self.source, self._browse_source))
            self.images_dir.setPlaceholderText("optional: when the images are not under the COCO folder")
            form.addRow("Images folder", _path_row(self.images_dir, self._browse_images))
            self.annotations.setPlaceholderText("optional: annotation JSON files, separated by ;")
            form.addRow("Annotation files", _path_row(self.annotations, self._browse_annotations))
            form.addRow("", self.all_images)
        else:
            self.source.setToolTip("A folder of images: one sub-folder per class, or just images")
            form.addRow("Image folder", _path_row(self.source, self._browse_source))
            form.addRow("Layout", self.layout_box)
        if project_path is None:
            form.addRow("Project file", _path_row(self.project, self._browse_project))
        else:
            form.addRow("Import into", self.into_open)
            form.addRow("", _path_row_with(self.into_new, self.project, self._browse_project))
            if Path(project_path).resolve() == demo_project_path().resolve():
                self.into_new.setChecked(True)  # real photos never belong in the generated demo
            self.target_group.buttonToggled.connect(lambda *_: self._update_target())
            self.project.textEdited.connect(lambda _t: self.into_new.setChecked(True))
        self.source.textChanged.connect(self._suggest_project)

        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.stage = QLabel()
        self.report_view = QPlainTextEdit()
        self.report_view.setReadOnly(True)
        self.report_view.setVisible(False)
        self.report_view.setMinimumHeight(140)
        self.buttons = QDialogButtonBox()
        self.start_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.start_button.setToolTip("Start the import; it runs in the background and can be cancelled")
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage)
        layout.addWidget(self.report_view, 1)
        layout.addWidget(self.buttons)
        self._update_target()

    def _update_target(self) -> None:
        """With a project open, Import waits until the person has said where the images go."""
        asked = self._fixed_project is not None
        chosen = not asked or self.target_group.checkedButton() is not None
        self.start_button.setEnabled(chosen and self._handle is None and self.summary is None)
        self.start_button.setToolTip(
            "Start the import; it runs in the background and can be cancelled"
            if chosen
            else "Choose first where the images go: the open project or a new one"
        )

    def target_path(self) -> Path | None:
        """Where the images will go, or None while that is not chosen yet."""
        if self._fixed_project is not None and self.into_open.isChecked():
            return Path(self._fixed_project)
        if self._fixed_project is not None and not self.into_new.isChecked():
            return None
        text = self.project.text().strip()
        return Path(text) if text else None

    # -- choosing files ------------------------------------------------------------------------------------

    def _browse_source(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the dataset folder", self.source.text())
        if folder:
            self.source.setText(folder)

    def _browse_images(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the images folder", self.images_dir.text())
        if folder:
            self.images_dir.setText(folder)

    def _browse_annotations(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Choose annotation files", self.source.text(), "COCO JSON (*.json)"
        )
        if files:
            self.annotations.setText(";".join(files))

    def _browse_project(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Project file",
            self.project.text(),
            "harapp projects (*.harapp)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.project.setText(path if path.endswith(".harapp") else path + ".harapp")
            self.project.setModified(True)  # chosen by the person: no longer follows the source folder
            self.into_new.setChecked(True)

    def _suggest_project(self, text: str) -> None:
        if text.strip() and not self.project.isModified():
            self.project.setText(str(suggested_project_path(Path(text.strip()))))

    # -- running -------------------------------------------------------------------------------------------

    def request(self) -> ImportRequest:
        """The request the current fields describe; raises ValueError with a message fit for the user."""
        source = Path(self.source.text().strip()) if self.source.text().strip() else None
        images = Path(self.images_dir.text().strip()) if self.images_dir.text().strip() else None
        if source is None and images is None:
            raise ValueError("Choose the dataset folder first.")
        for folder in (source, images):
            if folder is not None and not folder.is_dir():
                raise ValueError(f"{folder}: no such folder")
        if self._fixed_project is not None and self.target_group.checkedButton() is None:
            raise ValueError("Choose where the images go: into the open project, or into a new one.")
        project = self.target_path()
        if project is None:
            raise ValueError("Choose the project file the images go into.")
        files = tuple(Path(p.strip()) for p in self.annotations.text().split(";") if p.strip())
        for file in files:
            if not file.is_file():
                raise ValueError(f"{file}: no such annotation file")
        return ImportRequest(
            kind=self.kind,
            project_path=project,
            root=source,
            images_dir=images,
            annotation_files=files,
            layout=str(self.layout_box.currentData()),
            all_images=self.all_images.isChecked(),
        )

    def start(self) -> None:
        if self._handle is not None:
            return
        try:
            request = self.request()
        except ValueError as exc:
            self._show_error(str(exc))
            return
        self.summary, self.error_text = None, ""
        self.report_view.setVisible(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.stage.setText("Starting…")
        self.start_button.setEnabled(False)
        handle = start_worker(ImportWorker(request), name="harapp-import", parent=self)
        # The handle lives on the GUI thread and relays the worker's signals there.
        handle.progressed.connect(self._on_progress)
        handle.finished.connect(self._on_finished)
        handle.failed.connect(self._on_failed)
        handle.cancelled.connect(self._on_cancelled)
        handle.done.connect(self._on_done)
        self._handle = handle

    def is_running(self) -> bool:
        return self._handle is not None

    def _on_progress(self, progress: ImportProgress) -> None:
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        else:
            self.progress.setRange(0, 0)
        self.stage.setText(f"{progress.stage}… {progress.done}" + (f" of {progress.total}" if progress.total else ""))

    def _on_finished(self, summary: ImportSummary) -> None:
        self.summary = summary
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.stage.setText("Import finished.")
        self.report_view.setPlainText(summary.text())
        self.report_view.setVisible(True)
        self.cancel_button.setText("Close")
        self.imported.emit(summary.project_path)

    def _on_failed(self, message: str) -> None:
        self.error_text = message
        self._show_error(f"The import failed; the project is unchanged.\n\nCause: {message}")

    def _on_cancelled(self) -> None:
        self._show_error("The import was cancelled; the project is unchanged.")

    def _show_error(self, text: str) -> None:
        self.progress.setVisible(False)
        self.stage.setText("")
        self.report_view.setPlainText(text)
        self.report_view.setVisible(True)

    def _on_done(self) -> None:
        self._handle = None
        self._update_target()

    def _cancel_or_close(self) -> None:
        if self._handle is not None:
            self.stage.setText("Cancelling…")
            self._handle.cancel()
            return
        self.reject() if self.summary is None else self.accept()

    def done(self, result: int) -> None:
        # Closing the window while importing cancels and waits: no thread outlives its dialog.
        if self._handle is not None:
            self._handle.cancel_and_wait()
        super().done(result)

    def keyPressEvent(self, event) -> None:  # noqa: ANN001 - Qt signature
        if event.key() == Qt.Key.Key_Escape and self._handle is not None:
            self._cancel_or_close()
            return
        super().keyPressEvent(event)
