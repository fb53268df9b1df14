"""The visible answer to a drag over the window: a tinted sheet with a dashed frame that says what a drop does.

The sheet lets mouse (and so drag) events pass through to the window below it, which does the actual work.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QMimeData, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QWidget

from harapp.core.image_files import is_image_name


def dropped_paths(mime: QMimeData) -> list[Path]:
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []


def drop_action_text(mime: QMimeData, has_project: bool) -> str | None:
    """What dropping this would do, in words; None when the window cannot use it."""
    paths = dropped_paths(mime)
    projects = [p for p in paths if p.suffix == ".harapp"]
    if projects:
        return f"Drop to open the project {projects[0].name}"
    if not paths and not mime.hasImage():
        return None
    if not has_project:
        return "Open a project with a trained model first: then drop photos here to predict them"
    photos = [p for p in paths if is_image_name(p) or p.is_dir()]
    if paths and not photos:
        return "Drop to predict (these files do not look like photos: each row will say why)"
    count = len(photos) if photos else 1
    return f"Drop to predict {'the activity in this photo' if count == 1 else f'{count} photos and folders'}"


class DropOverlay(QWidget):
    """Covers its parent while a drag hovers over it; never takes a click, a key or the drop itself."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self._text = ""
        parent.installEventFilter(self)
        self.hide()

    def show_for(self, text: str) -> None:
        self._text = text
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.raise_()
        self.show()
        self.update()

    def text(self) -> str:
        return self._text if self.isVisible() else ""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        parent = self.parentWidget()
        if parent is not None and watched is parent and event.type() == QEvent.Type.Resize and self.isVisible():
            self.setGeometry(parent.rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        accent = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        tint = QColor(accent)
        tint.setAlpha(40)
        painter.fillRect(self.rect(), tint)
        frame = QRectF(self.rect()).adjusted(10, 10, -10, -10)
        painter.setPen(QPen(accent, 3, Qt.PenStyle.DashLine))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(frame, 14, 14)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        painter.setFont(font)
        box = painter.boundingRect(frame, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._text)
        box = box.adjusted(-18, -12, 18, 12)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(28, 28, 32, 225))
        painter.drawRoundedRect(box, 10, 10)
        painter.setPen(QColor("white"))
        painter.drawText(frame, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._text)
