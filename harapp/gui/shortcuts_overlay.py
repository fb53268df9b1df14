"""'?' shows every key: a translucent sheet over the window; any key or click hides it.

Two columns: the labelling keys (the project's classes, moving, clearing, persons) and the menu shortcuts,
which the window reads from its own actions so the list cannot fall behind the menus.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QKeyEvent, QMouseEvent, QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from harapp.gui.labeling import ClassKey

GENERAL_KEYS: tuple[tuple[str, str], ...] = (
    ("← → ↑ ↓", "move in the gallery"),
    ("A / D", "previous / next image"),
    ("Delete, Backspace, 0", "clear the label"),
    ("Shift+click, Ctrl+click", "select several images; a label key then labels them all (one undo)"),
    ("K", "show or hide keypoints"),
    ("click a box", "label that person instead of the whole image"),
    ("?", "show this list; any key closes it"),
)
"""Keys that are no menu action: the labelling keys work in the Label mode whenever no text field has focus."""


def shortcut_rows(keys: Sequence[ClassKey]) -> list[tuple[str, str]]:
    rows = []
    for key in keys:
        names = [str(key.number)] if key.number else []
        if key.letter:
            names.append(key.letter.upper())
        if names:
            rows.append((" or ".join(names), f"label as {key.name} and go to the next image"))
    return rows + list(GENERAL_KEYS)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><td align='right' style='padding:2px 10px'><b>{html.escape(k)}</b></td>"
        f"<td style='padding:2px 10px'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


class ShortcutsOverlay(QWidget):
    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.sheet = QLabel()
        self.sheet.setTextFormat(Qt.TextFormat.RichText)
        self.sheet.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.sheet.setStyleSheet("color: white;")
        layout = QVBoxLayout(self)
        layout.addWidget(self.sheet, 0, Qt.AlignmentFlag.AlignCenter)
        parent.installEventFilter(self)
        self.hide()

    def set_keys(self, keys: Sequence[ClassKey], menu_rows: Sequence[tuple[str, str]] = ()) -> None:
        labelling = _table(shortcut_rows(keys))
        menus = _table(menu_rows)
        self.sheet.setText(
            "<table><tr>"
            f"<td valign='top' style='padding-right:24px'><h3>Labelling</h3>{labelling}</td>"
            f"<td valign='top'><h3>Menus</h3>{menus}</td>"
            "</tr></table>"
        )

    def rows_text(self) -> str:
        return self.sheet.text()

    def show_over_parent(self) -> None:
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.setFocus()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        parent = self.parentWidget()
        if parent is not None and watched is parent and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(parent.rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 120))
        # A solid sheet behind the text: the photos under a translucent layer made it hard to read.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(28, 28, 32, 240))
        painter.drawRoundedRect(self.sheet.geometry().adjusted(-24, -16, 24, 16), 12, 12)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.hide()
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()
        event.accept()
