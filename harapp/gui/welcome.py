"""The view shown while no project is open: open, import, create the demo, or pick a recent project."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
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
        """Re-read the recent projects from the settings file; files that vanished are shown greyed out."""
        self.recent.clear()
        for text in load_settings().recent_projects:
            path = Path(text)
            item = QListWidgetItem(f"{path.stem}  —  {path.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            item.setToolTip(str(path))
            if not path.exists():
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip(f"{path} (file not found)")
            self.recent.addItem(item)
        if not self.recent.count():
            placeholder = QListWidgetItem("No recent projects yet")
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent.addItem(placeholder)

    def _on_recent(self, item: QListWidgetItem) -> None:
        text = item.data(Qt.ItemDataRole.UserRole)
        if text:
            self.recent_requested.emit(Path(text))
