"""The inspector's picture: the photo scaled to fit, person boxes (clickable) and optional keypoints."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFocusEvent,
    QFont,
    QFontMetrics,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from harapp.core.types import Label, Person
from harapp.gui.style import class_colour, text_colour_on

# COCO's 17-keypoint skeleton as pairs of 0-based keypoint indices (head, arms, torso, legs).
SKELETON = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip
UNLABELLED_BOX = QColor("#FFFFFF")
SELECTED_BOX = QColor("#00E5FF")


def place_tags(
    boxes: Sequence[QRectF],
    texts: Sequence[tuple[str, str]],
    metrics: QFontMetrics,
    bounds: QRectF,
    keep_full: int = 1,
) -> list[tuple[QRectF, str]]:
    """A caption rectangle per box that overlaps no other caption, in the order given (put the most important
    first). ``texts`` holds (full, short) per box: '2 sitting' and '2'. The full caption is used where it fits
    the box's width (the first ``keep_full`` boxes try it whatever their width); each tries above the box,
    inside its top, below it, inside its bottom, then the same with the short caption; with no free place
    left, the short caption goes inside the box's top-left corner."""
    height = metrics.height() + 2
    placed: list[tuple[QRectF, str]] = []

    def fits(rect: QRectF) -> bool:
        return bounds.contains(rect) and not any(rect.intersects(other) for other, _ in placed)

    for index, (box, (full, short)) in enumerate(zip(boxes, texts, strict=True)):
        narrow = metrics.horizontalAdvance(full) + 8 > box.width() + 24
        choices = [short] if narrow and index >= keep_full else [full, short]
        chosen: QRectF | None = None
        for text in choices:
            width = metrics.horizontalAdvance(text) + 8
            for top in (box.top() - height, box.top(), box.bottom(), box.bottom() - height):
                rect = QRectF(box.left(), top, width, height)
                if rect.right() > bounds.right():
                    rect.moveRight(bounds.right())
                if fits(rect):
                    chosen = rect
                    break
            if chosen is not None:
                placed.append((chosen, text))
                break
        if chosen is None:
            rect = QRectF(box.left(), max(bounds.top(), box.top()), metrics.horizontalAdvance(short) + 8, height)
            placed.append((rect, short))
    return placed


class ImageCanvas(QWidget):
    """Paints the image with its persons; a click on a box selects that person, elsewhere clears it."""

    person_clicked = Signal(object)
    """A person id, or None for a click outside every box."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 150)
        self._pixmap: QPixmap | None = None
        self._image_size = QSize()
        self._message = ""
        self._persons: list[Person] = []
        self._labels: dict[int, Label] = {}
        self._class_names: list[str] = []
        self.selected_person: int | None = None
        self.show_keypoints = True
        self._tags: dict[int, tuple[QRectF, str]] = {}
        # A click here takes the keyboard focus, so the label keys that follow act on this photo.
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setToolTip("Click a person's box to label that person; click elsewhere to label the whole image")

    def set_content(
        self,
        image_size: QSize,
        persons: Sequence[Person],
        labels: dict[int, Label],
        class_names: Sequence[str],
    ) -> None:
        """New image: its full-resolution size (the coordinates of the boxes), persons and their labels."""
        self._image_size = QSize(image_size)
        self._persons = list(persons)
        self._labels = dict(labels)
        self._class_names = list(class_names)
        if self.selected_person not in {p.id for p in self._persons}:
            self.selected_person = None
        self.update()

    def set_image(self, image: QImage | None, message: str = "") -> None:
        self._pixmap = QPixmap.fromImage(image) if image is not None and not image.isNull() else None
        self._message = message
        self.update()

    def has_image(self) -> bool:
        return self._pixmap is not None

    def select_person(self, person_id: int | None) -> None:
        self.selected_person = person_id
        self.update()

    def persons(self) -> list[Person]:
        return list(self._persons)

    def sizeHint(self) -> QSize:
        return QSize(420, 320)

    # -- geometry ------------------------------------------------------------------------------------------

    def _target_rect(self) -> QRectF:
        source = self._image_size if self._image_size.isValid() and not self._image_size.isEmpty() else None
        if source is None and self._pixmap is not None:
            source = self._pixmap.size()
        if source is None:
            return QRectF()
        room = QSize(max(1, self.width() - 8), max(1, self.height() - 8))
        fitted = source.scaled(room, Qt.AspectRatioMode.KeepAspectRatio)
        rect = QRectF(0, 0, fitted.width(), fitted.height())
        rect.moveCenter(QRectF(self.rect()).center())
        return rect

    def _scale(self) -> float:
        target = self._target_rect()
        width = self._image_size.width() if self._image_size.isValid() else 0
        return target.width() / width if width else 0.0

    def _box_rect(self, person: Person) -> QRectF:
        target, scale = self._target_rect(), self._scale()
        x, y, w, h = person.box
        return QRectF(target.left() + x * scale, target.top() + y * scale, w * scale, h * scale)

    def person_at(self, point: QPointF) -> int | None:
        """The smallest box under the point, so a child in front of an adult can still be picked."""
        hits = [p for p in self._persons if self._box_rect(p).contains(point)]
        if not hits:
            return None
        return min(hits, key=lambda p: p.box[2] * p.box[3]).id

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            person = self.person_at(event.position())
            self.select_person(person)
            self.person_clicked.emit(person)
        super().mousePressEvent(event)

    # -- painting ------------------------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Base))
        target = self._target_rect()
        if self._pixmap is None:
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._message or "no image selected")
            return
        painter.drawPixmap(target.toRect(), self._pixmap)
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = QFontMetrics(font)
        numbered = list(enumerate(self._persons, start=1))
        self._tags = self._place_tags(numbered, metrics)
        # The selected person is painted last, on top of overlapping boxes, and the others fade.
        numbered.sort(key=lambda item: item[1].id == self.selected_person)
        for number, person in numbered:
            self._paint_person(painter, number, person)
        if self.hasFocus():  # where the label keys go: a quiet frame in the highlight colour
            painter.setOpacity(1.0)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 2))
            painter.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))

    def _place_tags(self, numbered: list[tuple[int, Person]], metrics: QFontMetrics) -> dict[int, tuple[QRectF, str]]:
        # The selected person's caption is placed first, so it is the one that keeps its full text.
        order = sorted(numbered, key=lambda item: (item[1].id != self.selected_person, item[0]))
        texts = []
        for number, person in order:
            label = self._labels.get(person.id)
            name = f" {label.class_name}" if label and label.class_name else ""
            texts.append((f"{number}{name}", str(number)))
        keep_full = 1 if self.selected_person is not None else 0
        rects = place_tags([self._box_rect(p) for _, p in order], texts, metrics, QRectF(self.rect()), keep_full)
        return {person.id: rect for (_, person), rect in zip(order, rects, strict=True)}

    def tag_rects(self) -> dict[int, tuple[QRectF, str]]:
        """Where the last paint put each person's caption, and its text (tests check they do not overlap)."""
        return dict(self._tags)

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt API
        self.update()
        super().focusInEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt API
        self.update()
        super().focusOutEvent(event)

    def _paint_person(self, painter: QPainter, number: int, person: Person) -> None:
        label = self._labels.get(person.id)
        colour = class_colour(label.class_name, self._class_names) if label else UNLABELLED_BOX
        selected = person.id == self.selected_person
        if selected and label is None:
            colour = SELECTED_BOX
        painter.setOpacity(0.45 if self.selected_person is not None and not selected else 1.0)
        box = self._box_rect(person)
        # A dark outline under the coloured line keeps boxes visible on bright and dark photos alike.
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0, 160), 6 if selected else 3))
        painter.drawRect(box)
        painter.setPen(
            QPen(colour, 3.5 if selected else 1.5, Qt.PenStyle.SolidLine if selected else Qt.PenStyle.DashLine)
        )
        painter.drawRect(box)
        if self.show_keypoints and person.keypoints:
            self._paint_keypoints(painter, person.keypoints, colour)
        tag, text = self._tags.get(person.id, (QRectF(box.topLeft(), box.topLeft()), str(number)))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRect(tag)
        painter.setPen(text_colour_on(colour))
        painter.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
        painter.setOpacity(1.0)

    def _paint_keypoints(self, painter: QPainter, keypoints: Sequence[float], colour: QColor) -> None:
        target, scale = self._target_rect(), self._scale()
        points: list[QPointF | None] = []
        for i in range(0, len(keypoints) - 2, 3):
            x, y, visibility = keypoints[i], keypoints[i + 1], keypoints[i + 2]
            points.append(QPointF(target.left() + x * scale, target.top() + y * scale) if visibility > 0 else None)
        painter.setPen(QPen(colour.lighter(130), 2))
        for a, b in SKELETON:
            start, end = (points[a] if a < len(points) else None), (points[b] if b < len(points) else None)
            if start is not None and end is not None:
                painter.drawLine(start, end)
        painter.setPen(QPen(QColor(0, 0, 0, 200), 1))
        painter.setBrush(colour.lighter(150))
        for point in points:
            if point is not None:
                painter.drawEllipse(point, 3, 3)
