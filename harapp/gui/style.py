"""Colours and marks shared by the gallery and the inspector, so a class looks the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtGui import QColor

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
