"""The Train mode's left column: the form, the estimate, Start / Cancel / Retrain, the run's progress and messages.

The column scrolls rather than grows, so a small screen or a large font never pushes Start off the window. The
TrainingPanel connects the buttons and fills the labels; this module only lays them out.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from harapp.gui.icons import icon
from harapp.gui.style import ErrorTextStyle


def _text_label(text: str, parent: QWidget) -> QLabel:
    """A wrapped label whose text a user can select and copy (estimates, statuses and errors get quoted)."""
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class RunControls(QScrollArea):
    def __init__(self, form: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        inner = QWidget(self)
        self.estimate_label = _text_label("", inner)
        start = QPushButton("&Start training", inner)
        cancel = QPushButton("&Cancel", inner)
        retrain = QPushButton("&Retrain", inner)
        start.setToolTip("Train on the current labels in the background (Ctrl+T)")
        cancel.setToolTip("Stop the run after its current step; the last good checkpoint stays")
        retrain.setToolTip("Train the last configuration again on the current labels (Ctrl+Shift+T)")
        self.buttons = (start, cancel, retrain)
        row = QHBoxLayout()
        for button, name in zip(self.buttons, ("train", "cancel", "retrain"), strict=True):
            button.setIcon(icon(name))
            row.addWidget(button)

        self.progress_bar = QProgressBar(inner, minimum=0, maximum=1000)
        self.progress_bar.setFormat("%p%")
        self.progress_bar.setValue(0)
        self.status_label = _text_label("Open a project to train a model.", inner)
        self.message_label = _text_label("", inner)
        ErrorTextStyle(self.message_label, bold=True)
        self.message_label.hide()

        column = QVBoxLayout(inner)
        column.setContentsMargins(4, 4, 8, 4)
        column.addWidget(form)
        column.addWidget(self.estimate_label)
        column.addLayout(row)
        column.addWidget(self.progress_bar)
        column.addWidget(self.status_label)
        column.addWidget(self.message_label)
        column.addStretch(1)
        self.setWidget(inner)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(330)
        self.setMaximumWidth(460)
