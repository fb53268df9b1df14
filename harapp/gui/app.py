"""Start the desktop app: `harapp`, `harapp gui PROJECT` or `harapp gui --demo`."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from harapp.core.paths import demo_project_path
from harapp.gui import gc_guard


def _app_icon():  # noqa: ANN202 - QIcon, imported lazily with the resources helper
    try:
        from harapp.gui.icons import app_icon
    except ImportError:
        return None
    icon = app_icon()
    return None if icon.isNull() else icon


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, as under pytest-qt), named for QSettings and the desktop."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("harapp")
    app.setOrganizationName("harapp")
    app.setApplicationDisplayName("harapp")
    app.setDesktopFileName("harapp")
    # The palette is left to the platform theme, which follows the system's light/dark setting; every widget
    # here paints with palette roles, so a switch while running repaints correctly.
    icon = _app_icon()
    if icon is not None:
        app.setWindowIcon(icon)
    gc_guard.install(app)
    return app


def _event_loop(app: QApplication) -> int:
    # A seam for tests: once exec() has returned, Qt treats the application as closing for good.
    return int(app.exec())


def run_gui(project: Path | None = None, demo: bool = False) -> int:
    """Open the main window on a project, on the demo project (created first if missing), or on the welcome view."""
    app = make_application()
    from harapp.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if project is not None:
        window.open_project(Path(project))
    elif demo:
        if demo_project_path().exists():
            window.open_project(demo_project_path())
        else:
            window.create_demo()  # background worker with a progress dialog; opens the project when done
    return _event_loop(app)
