"""Confusion matrix of a trained model's test split; clicking a cell names the images behind it.

Rows are true classes, columns predicted classes (the trainer's ``Metrics.confusion`` layout). A click emits
``cell_clicked(true_class, predicted_class, image_ids)`` so the main window can filter the gallery.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QMouseEvent, QPainter, QPaintEvent, QPalette, QPen, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from harapp.gui.style import is_dark
from harapp.ml.metrics import Metrics


class ConfusionMatrixView(QWidget):
    cell_clicked = Signal(str, str, list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._classes: tuple[str, ...] = ()
        self._matrix: list[list[int]] = []
        self._cells: dict[tuple[int, int], list[int]] = {}
        self._grid = QRectF()
        self._hover: tuple[int, int] | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(220, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Confusion matrix: rows true class, columns predicted class")

    def sizeHint(self) -> QSize:
        return QSize(320, 260)

    def set_metrics(self, metrics: Metrics | None, true_classes: Mapping[int, int] | None = None) -> None:
        """Show ``metrics`` (a trainer Metrics or None to clear).

        ``true_classes`` maps image id -> true class index; it comes from the training snapshot when the
        metrics carry only the predictions of the test images.
        """
        if metrics is None:
            self._classes, self._matrix, self._cells = (), [], {}
            self.update()
            return
        self._classes = tuple(metrics.class_names)
        self._matrix = [list(map(int, row)) for row in metrics.confusion]
        targets = metrics.test_targets
        ids = tuple(metrics.test_image_ids)
        preds = tuple(metrics.test_predictions)
        if len(targets) == len(ids):
            truth = dict(zip(ids, (int(t) for t in targets), strict=True))
        else:
            truth = dict(true_classes or {})
        cells: dict[tuple[int, int], list[int]] = {}
        for image_id, pred in zip(ids, preds, strict=False):
            if image_id in truth:
                cells.setdefault((truth[image_id], int(pred)), []).append(int(image_id))
        self._cells = cells
        self.update()

    def class_names(self) -> tuple[str, ...]:
        return self._classes

    def image_ids(self, true_index: int, predicted_index: int) -> list[int]:
        return list(self._cells.get((true_index, predicted_index), []))

    def cell_rect(self, true_index: int, predicted_index: int) -> QRectF:
        """Where a cell is drawn (widget coordinates); tests click its centre."""
        n = max(1, len(self._classes))
        w = self._grid.width() / n
        h = self._grid.height() / n
        return QRectF(self._grid.left() + predicted_index * w, self._grid.top() + true_index * h, w, h)

    def _layout(self) -> QRectF:
        fm = QFontMetrics(self.font())
        label_w = max((fm.horizontalAdvance(c) for c in self._classes), default=40) + 8
        left = fm.height() + 6 + label_w
        top = 2 * fm.height() + 8
        width = max(20.0, self.width() - left - 6)
        height = max(20.0, self.height() - top - 6)
        # Square cells look best, but class names under narrow columns get cut: widen the cells (up to the
        # space there is) until the longest name fits.
        n = max(1, len(self._classes))
        name_w = max((fm.horizontalAdvance(c) for c in self._classes), default=0) + 6
        side = min(width, height)
        cell_w = min(width / n, max(side / n, name_w))
        return QRectF(left, top, cell_w * n, height if cell_w * n > side else side)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        self._grid = self._layout()
        super().resizeEvent(event)

    def _cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        if not self._classes or not self._grid.contains(pos):
            return None
        n = len(self._classes)
        col = int((pos.x() - self._grid.left()) / (self._grid.width() / n))
        row = int((pos.y() - self._grid.top()) / (self._grid.height() / n))
        if 0 <= row < n and 0 <= col < n:
            return row, col
        return None

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        cell = self._cell_at(event.position())
        if cell != self._hover:
            self._hover = cell
            if cell is None:
                self.setToolTip("")
                self.unsetCursor()
            else:
                true_c, pred_c = self._classes[cell[0]], self._classes[cell[1]]
                count = self._matrix[cell[0]][cell[1]]
                self.setToolTip(f"true {true_c}, predicted {pred_c}: {count} image(s) -- click to show them")
                self.setCursor(Qt.CursorShape.PointingHandCursor)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() != Qt.MouseButton.LeftButton:
            return
        cell = self._cell_at(event.position())
        if cell is not None:
            self.cell_clicked.emit(self._classes[cell[0]], self._classes[cell[1]], self.image_ids(*cell))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        painter.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        fm = QFontMetrics(self.font())
        if not self._classes:
            painter.setPen(text)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Confusion matrix appears after training")
            painter.end()
            return
        self._grid = self._layout()
        n = len(self._classes)
        peak = max((max(row) for row in self._matrix if row), default=0) or 1
        dark = is_dark(pal)
        base_hue = QColor("#2563eb") if not dark else QColor("#60a5fa")
        for r in range(n):
            row_total = sum(self._matrix[r]) if r < len(self._matrix) else 0
            for c in range(n):
                count = self._matrix[r][c] if r < len(self._matrix) and c < len(self._matrix[r]) else 0
                rect = self.cell_rect(r, c)
                fill = QColor(base_hue)
                fill.setAlphaF(0.08 + 0.85 * (count / peak))
                painter.fillRect(rect, fill)
                strong = count / peak > 0.55
                painter.setPen(QColor("white") if strong and not dark else text)
                share = f"\n{100 * count / row_total:.0f}%" if row_total and rect.height() > 2.4 * fm.height() else ""
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, f"{count}{share}")
                if (r, c) == self._hover:
                    painter.setPen(QPen(text, 2))
                    painter.drawRect(rect.adjusted(1, 1, -1, -1))
        painter.setPen(QPen(text, 1))
        painter.drawRect(self._grid)
        # Column labels (predicted) above, row labels (true) at the left, each with an axis title.
        for i, name in enumerate(self._classes):
            col = self.cell_rect(0, i)
            elided = fm.elidedText(name, Qt.TextElideMode.ElideRight, int(col.width()) - 2)
            painter.drawText(
                QRectF(col.left(), self._grid.top() - fm.height() - 2, col.width(), fm.height()),
                Qt.AlignmentFlag.AlignHCenter,
                elided,
            )
            row = self.cell_rect(i, 0)
            painter.drawText(
                QRectF(fm.height() + 2, row.top(), self._grid.left() - fm.height() - 8, row.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                name,
            )
        painter.drawText(
            QRectF(self._grid.left(), 2, self._grid.width(), fm.height()), Qt.AlignmentFlag.AlignHCenter, "predicted"
        )
        painter.save()
        painter.translate(QPointF(fm.ascent(), self._grid.center().y()))
        painter.rotate(-90)
        painter.drawText(QPointF(-fm.horizontalAdvance("true") / 2, 0), "true")
        painter.restore()
        painter.end()
