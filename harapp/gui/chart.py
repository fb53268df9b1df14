"""A live training chart (loss and validation accuracy) painted with QPainter.

PySide6-Essentials ships no QtCharts, and two lines with axes and a legend do not justify PySide6-Addons.
Loss uses the left axis (scaled to its data), accuracy the right axis (fixed 0-100 %). The x-axis counts one
thing for the whole run, set when the run starts (epochs, or a linear probe's solver steps; see
harapp.ml.mode_fields.fit_axis): its range never shrinks while the run goes on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from harapp.gui.style import is_dark


@dataclass(frozen=True)
class ChartPoint:
    x: float
    """Progress in the axis's unit (fractions of an epoch allowed: a point per step draws the line while an epoch
    runs)."""
    loss: float


def nice_step(span: float, target_ticks: int = 4) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target_ticks`` ticks over span."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(1, target_ticks)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


class TrainingChart(QWidget):
    """Loss and accuracy lines against epochs; call :meth:`add_point` as progress arrives."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._points: list[ChartPoint] = []
        self._accuracy: dict[float, float] = {}
        """Validation accuracy by epoch: one value per epoch, a later report for the same epoch replaces it."""
        self._x_max = 1.0
        self._x_title = "epoch"
        self._placeholder = "No training yet"
        self.setMinimumSize(260, 150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName("Training chart: loss and validation accuracy by epoch")

    # -- data -----------------------------------------------------------------------------------------
    def clear(self, epochs: float = 1.0, title: str = "epoch", placeholder: str = "No training yet") -> None:
        """Empty the chart for a new run: its x-axis counts ``title`` from 0 to ``epochs``."""
        self._points.clear()
        self._accuracy.clear()
        self._x_max = max(1.0, float(epochs))
        self._x_title = title
        self._placeholder = placeholder
        self.update()

    def set_epochs(self, epochs: float) -> None:
        """Widen the axis to ``epochs`` (never narrows it: a run's axis keeps its meaning and its range)."""
        self._x_max = max(self._x_max, 1.0, float(epochs))
        self.update()

    def set_placeholder(self, text: str) -> None:
        """What the empty chart says (why there is no line yet, or none at all)."""
        self._placeholder = text
        self.update()

    def x_title(self) -> str:
        return self._x_title

    def x_max(self) -> float:
        return self._x_max

    def add_point(self, x: float, loss: float | None, accuracy: float | None = None) -> None:
        """Add a loss sample at ``x`` epochs (and, if given, the accuracy for that x); non-finite values are
        dropped so a diverging run cannot break the scale."""
        if self._points and x < self._points[-1].x - 1e-9:
            # Progress went backwards: the trainer restarted a fit (e.g. trying another setting). Showing
            # only the current fit keeps the line readable instead of zig-zagging back to the start.
            self._points.clear()
        if loss is not None and math.isfinite(loss):
            self._points.append(ChartPoint(float(x), loss))
        if accuracy is not None:
            self.set_accuracy(x, accuracy)
        self._x_max = max(self._x_max, float(x))
        self.update()

    def set_accuracy(self, epoch: float, accuracy: float) -> None:
        if math.isfinite(accuracy):
            self._accuracy[float(epoch)] = float(accuracy)
            self._x_max = max(self._x_max, float(epoch))
            self.update()

    def points(self) -> list[ChartPoint]:
        """Loss samples in arrival order."""
        return list(self._points)

    def accuracy_points(self) -> list[tuple[float, float]]:
        return sorted(self._accuracy.items())

    def sizeHint(self) -> QSize:
        return QSize(420, 200)

    # -- painting -------------------------------------------------------------------------------------
    def _series_colors(self) -> tuple[QColor, QColor]:
        # Darker hues on light backgrounds, brighter ones on dark: both keep >= 3:1 contrast for lines.
        if is_dark(self.palette()):
            return QColor("#ff9e57"), QColor("#6cc4ff")
        return QColor("#c2410c"), QColor("#1d4ed8")

    def _loss_range(self) -> tuple[float, float]:
        values = sorted(p.loss for p in self._points)
        if not values:
            return 0.0, 1.0
        # One wild step (a loss of 100+ in a run that settles near 0.5) would flatten the whole line
        # against the axis; such outliers are clipped at the top instead. A handful of points (a linear
        # probe's few reports) has no typical level to clip against, so all of them stay in view.
        median = values[len(values) // 2]
        top = min(values[-1], 5 * median) if median > 0 and len(values) >= 10 else values[-1]
        top = top * 1.1 if top > 0 else 1.0
        step = nice_step(top)
        return 0.0, math.ceil(top / step) * step

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        grid = QColor(text)
        grid.setAlpha(40)
        painter.fillRect(self.rect(), pal.color(QPalette.ColorRole.Base))
        fm = QFontMetrics(self.font())
        loss_color, acc_color = self._series_colors()

        lo, hi = self._loss_range()
        loss_step = nice_step(hi - lo)
        left = fm.horizontalAdvance(_fmt(hi, loss_step)) + fm.height() + 10
        right = fm.horizontalAdvance("100%") + fm.height() + 10
        top = fm.height() + 12  # room for the legend
        bottom = 2 * fm.height() + 8  # tick labels and the axis title
        plot = QRectF(left, top, max(10.0, self.width() - left - right), max(10.0, self.height() - top - bottom))

        def px(x: float) -> float:
            return plot.left() + plot.width() * (x / self._x_max)

        def py_loss(v: float) -> float:
            return plot.bottom() - plot.height() * ((v - lo) / (hi - lo))

        def py_acc(v: float) -> float:
            return plot.bottom() - plot.height() * max(0.0, min(1.0, v))

        # Grid and tick labels.
        painter.setPen(QPen(grid, 1))
        tick = lo
        while tick <= hi + 1e-9:
            y = py_loss(tick)
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            tick += loss_step
        painter.setPen(text)
        tick = lo
        while tick <= hi + 1e-9:
            y = py_loss(tick)
            label = _fmt(tick, loss_step)
            painter.drawText(
                QRectF(0, y - fm.height() / 2, left - 6, fm.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                label,
            )
            tick += loss_step
        for pct in (0, 25, 50, 75, 100):
            y = py_acc(pct / 100)
            painter.drawText(
                QRectF(plot.right() + 6, y - fm.height() / 2, right - 6, fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{pct}%",
            )
        x_step = max(1.0, nice_step(self._x_max, 5))
        xt = 0.0
        while xt <= self._x_max + 1e-9:
            x = px(xt)
            painter.drawText(
                QRectF(x - 30, plot.bottom() + 4, 60, fm.height()), Qt.AlignmentFlag.AlignHCenter, f"{xt:g}"
            )
            xt += x_step
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 4 + fm.height(), plot.width(), fm.height()),
            Qt.AlignmentFlag.AlignHCenter,
            self._x_title,
        )
        # Axis titles, rotated, beside the tick labels.
        self._vertical_text(painter, QPointF(fm.ascent(), plot.center().y()), "loss", loss_color, -90)
        self._vertical_text(
            painter, QPointF(self.width() - fm.ascent() - 2, plot.center().y()), "val. accuracy", acc_color, 90
        )
        painter.setPen(QPen(text, 1))
        painter.drawRect(plot)

        # Series.
        loss_poly = QPolygonF([QPointF(px(p.x), py_loss(p.loss)) for p in self._points])
        acc_poly = QPolygonF([QPointF(px(x), py_acc(a)) for x, a in self.accuracy_points()])
        painter.setClipRect(plot.adjusted(-3, -3, 3, 3))
        for poly, color in ((loss_poly, loss_color), (acc_poly, acc_color)):
            painter.setPen(QPen(color, 2))
            if poly.size() > 1:
                painter.drawPolyline(poly)
            painter.setBrush(color)
            if 0 < poly.size() <= 30:  # markers only while sparse, else they blur the line
                for point in poly:  # type: ignore[attr-defined]  # PySide6's stub lacks QPolygonF.__iter__
                    painter.drawEllipse(point, 2.5, 2.5)
            painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setClipping(False)

        # Legend (top right of the plot) and an empty-state hint.
        self._legend(painter, fm, plot, [("loss", loss_color), ("val. accuracy", acc_color)])
        if not self._points and not self._accuracy:
            painter.setPen(text)
            painter.drawText(
                plot.adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder
            )
        painter.end()

    def _vertical_text(self, painter: QPainter, at: QPointF, label: str, color: QColor, angle: float) -> None:
        painter.save()
        painter.setPen(color)
        painter.translate(at)
        painter.rotate(angle)
        fm = QFontMetrics(self.font())
        painter.drawText(QPointF(-fm.horizontalAdvance(label) / 2, 0), label)
        painter.restore()

    def _legend(self, painter: QPainter, fm: QFontMetrics, plot: QRectF, items: list[tuple[str, QColor]]) -> None:
        x = plot.right()
        y = plot.top() - fm.height() - 4
        text = self.palette().color(QPalette.ColorRole.WindowText)
        for label, color in reversed(items):
            width = fm.horizontalAdvance(label)
            x -= width
            painter.setPen(text)
            painter.drawText(QRectF(x, y, width, fm.height()), Qt.AlignmentFlag.AlignVCenter, label)
            x -= 22
            painter.setPen(QPen(color, 3))
            painter.drawLine(QPointF(x, y + fm.height() / 2), QPointF(x + 16, y + fm.height() / 2))
            x -= 14


def _fmt(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:.{decimals}f}"
