"""Which person a dropped photo's prediction is about: the boxes it used, and a dialog to point at another.

The person view of the model sees the square around one person. For a photo without annotations, that is the
largest person the pose model finds; the Predict panel draws that box (and the other people found, dashed),
and this dialog lets the person click another box, or drag a new one, to say "this person".
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QImageReader, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from harapp.core.types import Box

USED_COLOUR = QColor("#FFD54F")
OTHER_COLOUR = QColor("#FFFFFF")
MIN_DRAG = 8
"""Pixels on screen: a shorter drag is a click (choose a box), not a new box."""


def read_photo(source: str | bytes) -> QImage:
    """The photo upright (EXIF), as the model read it: a path, or encoded bytes of a pasted image."""
    if isinstance(source, bytes):
        image = QImage.fromData(source)
        return image
    reader = QImageReader(source)
    reader.setAutoTransform(True)
    return reader.read()


def paint_boxes(
    painter: QPainter,
    boxes: Sequence[Box],
    used: Box | None,
    scale: float,
    offset: QPointF = QPointF(0, 0),  # noqa: B008
) -> None:
    """Person boxes (photo pixels) on a picture drawn at `scale`: the one the model used solid, others dashed."""
    painter.save()
    painter.setBrush(Qt.BrushStyle.NoBrush)
    for box in boxes:
        is_used = used is not None and all(abs(a - b) < 0.5 for a, b in zip(box, used, strict=True))
        if is_used:
            continue
        painter.setPen(QPen(OTHER_COLOUR, 1.5, Qt.PenStyle.DashLine))
        painter.drawRect(_scaled(box, scale, offset))
    if used is not None:
        painter.setPen(QPen(QColor(0, 0, 0, 160), 4))
        painter.drawRect(_scaled(used, scale, offset))
        painter.setPen(QPen(USED_COLOUR, 2))
        painter.drawRect(_scaled(used, scale, offset))
    painter.restore()


def _scaled(box: Box, scale: float, offset: QPointF) -> QRectF:
    x, y, w, h = box
    return QRectF(offset.x() + x * scale, offset.y() + y * scale, w * scale, h * scale)


def thumbnail_with_boxes(thumb: QImage, photo_size: tuple[int, int], boxes: Sequence[Box], used: Box | None) -> QPixmap:
    """A row's thumbnail with the person boxes drawn on it."""
    pixmap = QPixmap.fromImage(thumb)
    if photo_size[0] <= 0 or not (boxes or used):
        return pixmap
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    paint_boxes(painter, boxes, used, thumb.width() / photo_size[0])
    painter.end()
    return pixmap


class PhotoBoxes(QWidget):
    """The photo, scaled to fit, with its person boxes; click a box to choose it, drag to draw a new one."""

    chosen = Signal(tuple)
    """The chosen box, in photo pixels."""

    def __init__(self, photo: QImage, boxes: Sequence[Box], used: Box | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.photo = photo
        self.boxes = list(boxes)
        self.used = used
        self._drag_from: QPointF | None = None
        self._drag_to: QPointF | None = None
        self.setMinimumSize(320, 240)
        self.setCursor(Qt.CursorShape.CrossCursor)

    def sizeHint(self) -> QSize:
        w, h = self.photo.width(), self.photo.height()
        scale = min(1.0, 720 / max(1, w), 540 / max(1, h))
        return QSize(max(320, int(w * scale)), max(240, int(h * scale)))

    def _geometry(self) -> tuple[float, QPointF]:
        w, h = max(1, self.photo.width()), max(1, self.photo.height())
        scale = min(self.width() / w, self.height() / h)
        return scale, QPointF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2)

    def to_photo(self, point: QPointF) -> tuple[float, float]:
        scale, offset = self._geometry()
        x = (point.x() - offset.x()) / scale
        y = (point.y() - offset.y()) / scale
        return max(0.0, min(self.photo.width(), x)), max(0.0, min(self.photo.height(), y))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        scale, offset = self._geometry()
        target = QRectF(offset.x(), offset.y(), self.photo.width() * scale, self.photo.height() * scale)
        painter.drawImage(target, self.photo)
        paint_boxes(painter, self.boxes, self.used, scale, offset)
        if self._drag_from is not None and self._drag_to is not None:
            painter.setPen(QPen(USED_COLOUR, 2, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(self._drag_from, self._drag_to).normalized())
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = self._drag_to = event.position()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._drag_from is not None:
            self._drag_to = event.position()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        start, self._drag_from = self._drag_from, None
        self._drag_to = None
        if start is None:
            return
        end = event.position()
        if abs(end.x() - start.x()) < MIN_DRAG or abs(end.y() - start.y()) < MIN_DRAG:
            x, y = self.to_photo(end)
            hits = [b for b in self.boxes if b[0] <= x <= b[0] + b[2] and b[1] <= y <= b[1] + b[3]]
            if hits:  # the smallest box under the click: nested people pick the inner one
                self.choose(min(hits, key=lambda b: b[2] * b[3]))
            self.update()
            return
        (x0, y0), (x1, y1) = self.to_photo(start), self.to_photo(end)
        self.choose((min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)))

    def choose(self, box: Box) -> None:
        if box not in self.boxes:
            self.boxes.append(box)
        self.used = box
        self.update()
        self.chosen.emit(tuple(box))


class PersonPicker(QDialog):
    """'Which person?': the photo with its boxes; OK predicts the chosen one."""

    def __init__(self, photo: QImage, boxes: Sequence[Box], used: Box | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Which person?")
        self.canvas = PhotoBoxes(photo, boxes, used, self)
        hint = QLabel(
            "Click a person's box, or drag a box around the person the prediction should be about. "
            "The model sees the whole photo and the square around that person."
        )
        hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Predict this person")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(hint)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.buttons)

    def chosen_box(self) -> Box | None:
        return self.canvas.used
