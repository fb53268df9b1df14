"""Label | Train | Predict: the main window shows one mode at a time, and each mode gets the whole window.

Why modes and not docks (see docs/gui-layout.md): labelling needs the gallery and the image view as large as the
screen allows, training needs a form, a chart and a confusion matrix side by side, and prediction needs room
for photos with their bars. Docks shared one screen between all three, so none had enough at 1366x768. A run
keeps going while the person labels: the run indicator in the tab bar's corner shows its progress in every
mode, and a click on it comes back to Train.
"""

from __future__ import annotations

from enum import IntEnum

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QTabWidget, QWidget

from harapp.gui.icons import icon


class Mode(IntEnum):
    LABEL = 0
    TRAIN = 1
    PREDICT = 2


MODE_TITLES = {Mode.LABEL: "&Label", Mode.TRAIN: "&Train", Mode.PREDICT: "&Predict"}
MODE_ACTIONS = {Mode.LABEL: "Go to &Label", Mode.TRAIN: "Go to &Train", Mode.PREDICT: "Go to &Predict"}
MODE_KEYS = {Mode.LABEL: "Ctrl+1", Mode.TRAIN: "Ctrl+2", Mode.PREDICT: "Ctrl+3"}
MODE_TIPS = {
    Mode.LABEL: "Browse the photos and correct their labels with the keyboard",
    Mode.TRAIN: "Train a model on the current labels and read its results",
    Mode.PREDICT: "Drop or paste photos to see the active model's prediction",
}


class RunIndicator(QWidget):
    """A compact progress line for the run in progress, visible in every mode; a click opens Train."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel(self)
        self.bar = QProgressBar(self, minimum=0, maximum=1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(120)
        self.bar.setMaximumHeight(10)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 0)
        layout.addWidget(self.text)
        layout.addWidget(self.bar)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("The training run in progress: click to see it (Ctrl+2)")
        self.hide()

    def show_progress(self, fraction: float, text: str) -> None:
        self.bar.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.text.setText(text)
        self.bar.show()
        self.show()

    def show_text(self, text: str) -> None:
        """A run that ended: its outcome stays readable until the next run starts."""
        self.text.setText(text)
        self.bar.hide()
        self.setVisible(bool(text))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class ModeTabs(QTabWidget):
    """The three modes as tabs; switching never stops a run or loses a selection."""

    mode_changed = Signal(int)

    def __init__(self, label_page: QWidget, train_page: QWidget, predict_page: QWidget) -> None:
        super().__init__()
        self.setDocumentMode(True)  # a flat tab bar: the pages are the window, not boxes inside it
        self.setObjectName("modes")
        for mode, page, name in (
            (Mode.LABEL, label_page, "label"),
            (Mode.TRAIN, train_page, "train"),
            (Mode.PREDICT, predict_page, "predict"),
        ):
            index = self.addTab(page, icon(name), MODE_TITLES[mode].replace("&", ""))
            self.setTabToolTip(index, f"{MODE_TIPS[mode]} ({MODE_KEYS[mode]})")
        # The tab bar takes no focus: a click on a tab must not pull focus away from the gallery.
        self.tabBar().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.run_indicator = RunIndicator(self)
        self.setCornerWidget(self.run_indicator, Qt.Corner.TopRightCorner)
        self.run_indicator.clicked.connect(lambda: self.set_mode(Mode.TRAIN))
        self.currentChanged.connect(lambda index: self.mode_changed.emit(index))

    def mode(self) -> Mode:
        return Mode(self.currentIndex())

    def set_mode(self, mode: Mode) -> None:
        self.setCurrentIndex(int(mode))
