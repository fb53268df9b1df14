"""Create demo project: open the offline demo, drawing it first in the background (with a progress dialog)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox, QProgressDialog

from harapp.core.importers.summary import ImportSummary
from harapp.core.paths import demo_project_path
from harapp.gui.import_worker import ImportProgress, ImportRequest, ImportWorker
from harapp.gui.workers import JobHandle

if TYPE_CHECKING:
    from harapp.gui.main_window import MainWindow


def create_demo(window: MainWindow, n_images: int | None = None) -> JobHandle | None:
    """Open the demo project, or start drawing it and open it when done; the job, or None when it existed."""
    path = demo_project_path()
    if path.exists():
        window.open_project(path)
        return None
    dialog = QProgressDialog("Creating the demo project…", "Cancel", 0, 0, window)
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
        window.open_project(summary.project_path)

    def failed(message: str) -> None:
        dialog.close()
        QMessageBox.warning(window, "Demo project", f"The demo project could not be created.\n\nCause: {message}")

    handle = window.start_job(worker, "harapp-demo")
    # Connected to the handle, which relays on the GUI thread: these closures touch widgets.
    handle.progressed.connect(progressed)
    handle.finished.connect(finished)
    handle.failed.connect(failed)
    handle.cancelled.connect(dialog.close)
    dialog.canceled.connect(handle.cancel)
    dialog.show()
    return handle
