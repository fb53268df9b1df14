"""A one-line label that elides its text to the width it gets and keeps the whole text in its tooltip.

For text whose length is not ours to choose (a model's name, a filter's description): wrapped, it grew to
three or five lines in a narrow column; elided, it keeps the layout still and loses nothing (hover shows all).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._own_tip = False
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(40)
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        self._full = text
        if not self._own_tip:
            super().setToolTip(text)
        self._elide()

    def setToolTip(self, text: str) -> None:  # noqa: N802 - Qt API
        """An explicit tooltip (e.g. a full path) replaces the automatic one for good."""
        self._own_tip = True
        super().setToolTip(text)

    def text(self) -> str:
        return self._full

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(10, self.width() - 2)
        super().setText(QFontMetrics(self.font()).elidedText(self._full, Qt.TextElideMode.ElideRight, width))
