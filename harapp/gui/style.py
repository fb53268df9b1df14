"""Colours and marks shared by the widgets: a class looks the same everywhere, and errors read on any palette."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QWidget

# Distinct, colour-blind-friendly hues (Okabe-Ito order); classes beyond these get generated hues.
_CLASS_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#7F7F7F")

SOURCE_MARKS = {"caption": "C", "human": "H", "model": "M"}
SOURCE_TEXT = {
    "caption": "from the COCO captions",
    "human": "set by a person",
    "model": "predicted by a model",
}
UNCERTAIN_COLOUR = QColor("#F0B400")
DISAGREE_COLOUR = QColor("#E0245E")
PREDICTION_COLOUR = QColor("#37474F")
SUGGESTION_COLOUR = QColor("#6A1B9A")
"""Guided curation's suggested label: violet, apart from the class colours and the disagreement red."""
"""A model prediction that agrees with the label (or stands alone): dark slate, white text, on any photo."""


def class_colour(name: str | None, names: Sequence[str]) -> QColor:
    if name is None:
        return QColor("#8A8A8A")
    try:
        index = list(names).index(name)
    except ValueError:
        index = abs(hash(name))
    if index < len(_CLASS_COLOURS):
        return QColor(_CLASS_COLOURS[index])
    return QColor.fromHsv((index * 67) % 360, 170, 200)


def text_colour_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on the given badge colour."""
    luminance = 0.299 * background.red() + 0.587 * background.green() + 0.114 * background.blue()
    return QColor("#000000") if luminance > 150 else QColor("#FFFFFF")


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


class ErrorTextStyle(QObject):
    """Keeps a label's text in the error colour that suits its palette, also after a light/dark switch."""

    def __init__(self, label: QWidget, bold: bool = False) -> None:
        super().__init__(label)
        self._label = label
        self._weight = "bold" if bold else "normal"
        # A widget with a style sheet no longer inherits palette changes, so watch (and read) its parent's.
        self._source = label.parentWidget() or label
        self._source.installEventFilter(self)
        self.apply()

    def apply(self) -> None:
        sheet = f"color: {error_text_color(self._source.palette())}; font-weight: {self._weight};"
        if self._label.styleSheet() != sheet:  # setting a sheet changes the palette: set it only when it differs
            self._label.setStyleSheet(sheet)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.apply()
        return False


def error_text_color(palette: QPalette) -> str:
    """A red that stays readable (>= 4.5:1) on the palette's window colour, light or dark."""
    return "#ff8a80" if is_dark(palette) else "#c62828"
