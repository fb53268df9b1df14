"""The view shown while no project is open: open, import, create the demo, or pick a recent project."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from harapp.core.paths import load_settings
from harapp.gui.recent_projects import THUMB_SIDE, RecentInfo, RecentProjectsWorker
from harapp.gui.workers import JobHandle, start_worker


class WelcomeView(QWidget):
    open_requested = Signal()
    import_coco_requested = Signal()
    import_folder_requested = Signal()
    demo_requested = Signal()
    recent_requested = Signal(object)
    """A recent project's Path."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        title = QLabel("<h1>harapp</h1>")
        intro = QLabel(
            "Human activity recognition in still photos: curate caption-derived labels "
            "(walking, running, sitting, standing) with the keyboard, train a classifier in the background, "
            "and drop a photo on the window to see what it shows."
        )
        intro.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        actions = (
            ("open", "Open project…", "Open a .harapp project file (Ctrl+O)", self.open_requested),
            (
                "coco",
                "Import COCO…",
                "Make a project from a COCO download: captions, person boxes, keypoints",
                self.import_coco_requested,
            ),
            (
                "folder",
                "Import folder…",
                "Make a project from a folder of images (sub-folders become classes)",
                self.import_folder_requested,
            ),
            (
                "demo",
                "Create demo project (offline)",
                "Generate 200 synthetic photos of people and open them; needs no download",
                self.demo_requested,
            ),
        )
        column = QVBoxLayout()
        for key, text, tip, signal in actions:
            button = QPushButton(text)
            button.setToolTip(tip)
            button.setMinimumHeight(34)
            button.clicked.connect(signal.emit)
            self.buttons[key] = button
            column.addWidget(button)
        column.addStretch(1)
        self.recent = QListWidget()
        self.recent.setToolTip("Double-click (or Enter) to open a recent project")
        self.recent.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE * 3 // 4))
        self.recent.setSpacing(2)
        self.recent.setWordWrap(True)
        self._job: JobHandle | None = None
        self._again = False
        self.recent.itemActivated.connect(self._on_recent)
        self.recent.setMinimumHeight(180)
        self.recent.setMaximumHeight(360)
        recent_column = QVBoxLayout()
        recent_column.addWidget(QLabel("<b>Recent projects</b>"))
        recent_column.addWidget(self.recent, 1)
        body = QHBoxLayout()
        body.addLayout(column, 2)
        body.addLayout(recent_column, 3)
        content = QWidget()
        content.setMaximumWidth(980)  # long lines and wide buttons are hard to read on big screens
        inner = QVBoxLayout(content)
        inner.addWidget(title)
        inner.addWidget(intro)
        inner.addSpacing(16)
        inner.addLayout(body)
        inner.addStretch(1)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(48, 32, 48, 32)
        outer.addStretch(1)
        outer.addWidget(content, 100)
        outer.addStretch(1)
        self.refresh()

    def refresh(self) -> None:
        """Re-read the recent projects from the settings file; files that vanished are shown greyed out. Image
        counts, dates and thumbnails arrive from a worker a moment later."""
        self.recent.clear()
        paths = [Path(text) for text in load_settings().recent_projects]
        for path in paths:
            item = QListWidgetItem(f"{path.stem}\n{path.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            item.setSizeHint(QSize(0, THUMB_SIDE * 3 // 4 + 8))
            if not path.exists():
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip(f"{path} (file not found)")
            self.recent.addItem(item)
        if not self.recent.count():
            placeholder = QListWidgetItem("No recent projects yet")
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent.addItem(placeholder)
            return
        self._read_details(paths)

    def _read_details(self, paths: list[Path]) -> None:
        if self._job is not None and self._job.is_running():
            self._again = True  # the list changed while the last read ran: read again once it ends
            self._job.cancel()
            return
        job = start_worker(RecentProjectsWorker(paths), name="harapp-recent", parent=self)
        job.progressed.connect(self._show_details)
        job.done.connect(self._after_read)
        self._job = job

    def _after_read(self) -> None:
        self._job = None
        if self._again:
            self._again = False
            self.refresh()

    def _show_details(self, info: RecentInfo) -> None:
        for row in range(self.recent.count()):
            item = self.recent.item(row)
            if item.data(Qt.ItemDataRole.UserRole) != str(info.path):
                continue
            item.setText(f"{info.path.stem}  —  {info.summary()}\n{info.path.parent}")
            if info.thumbnail is not None:
                item.setIcon(QIcon(QPixmap.fromImage(info.thumbnail)))

    def details_text(self) -> list[str]:
        """The recent list's lines as shown (tests)."""
        return [self.recent.item(i).text() for i in range(self.recent.count())]

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        self._again = False
        return self._job.cancel_and_wait(timeout_ms) if self._job is not None else True

    def _on_recent(self, item: QListWidgetItem) -> None:
        text = item.data(Qt.ItemDataRole.UserRole)
        if text:
            self.recent_requested.emit(Path(text))
