"""A reliability diagram: how often the model is right at each level of confidence it claims.

Bars are the accuracy of the held-out predictions in each confidence bin; the diagonal is where they would be
if every "80% sure" were right 80% of the time. Bars below it mean over-confidence. The caption gives the
expected calibration error (the bars' average distance from the diagonal, weighted by how many predictions
each holds) and the temperatures that calibrate the model; its tooltip names each class's.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QWidget

from harapp.ml.calibration import Calibration

BAR_COLOUR = QColor("#0072B2")
GAP_COLOUR = QColor(224, 36, 94, 110)
EXPLANATION = (
    "Bars: how often the held-out predictions in each confidence band were right. The diagonal is a model "
    "whose confidence can be taken at its word; bars below it are over-confident."
)


class ReliabilityDiagram(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.calibration: Calibration | None = None
        self.setMinimumSize(160, 140)
        self.setToolTip(EXPLANATION)

    def set_calibration(self, calibration: Calibration | None, class_names: Sequence[str] = ()) -> None:
        self.calibration = calibration
        self.setVisible(calibration is not None)
        tip = EXPLANATION
        if calibration is not None and len(calibration.temperatures) == len(class_names) and self._per_class():
            each = ", ".join(f"{n} {t:.2f}" for n, t in zip(class_names, calibration.temperatures, strict=True))
            tip += f"\n\nA prediction's logits are divided by the temperature of the class it names: {each}."
        self.setToolTip(tip)
        self.update()

    def caption(self) -> str:
        c = self.calibration
        if c is None or not c.temperatures:
            return ""
        low, high = min(c.temperatures), max(c.temperatures)
        temperature = f"temperatures {low:.2f}–{high:.2f}" if self._per_class() else f"temperature {low:.2f}"
        return f"ECE {c.ece:.3f} (uncalibrated {c.ece_uncalibrated:.3f}) · {temperature}"

    def _per_class(self) -> bool:
        """Whether the classes' temperatures differ as shown (older models have one for all)."""
        return self.calibration is not None and len({f"{t:.2f}" for t in self.calibration.temperatures}) > 1

    def sizeHint(self) -> QSize:
        return QSize(240, 200)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        if self.calibration is None:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        text = palette.color(QPalette.ColorRole.WindowText)
        metrics = QFontMetrics(self.font())
        line = metrics.height()
        plot = QRectF(line * 2.2, line * 1.6, self.width() - line * 2.8, self.height() - line * 3.4)
        if plot.width() < 20 or plot.height() < 20:
            painter.end()
            return
        painter.setPen(text)
        painter.drawText(QRectF(0, 0, self.width(), line * 1.4), Qt.AlignmentFlag.AlignCenter, self.caption())
        painter.setPen(QPen(text, 1))
        painter.drawRect(plot)
        for bin_ in self.calibration.bins:
            if not bin_.count:
                continue
            left = plot.left() + bin_.lower * plot.width()
            width = (bin_.upper - bin_.lower) * plot.width()
            top = plot.bottom() - bin_.accuracy * plot.height()
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(BAR_COLOUR)
            painter.drawRect(QRectF(left + 1, top, width - 2, plot.bottom() - top))
            # The gap to where the bar should be, for a confidence read at its word.
            ideal = plot.bottom() - bin_.confidence * plot.height()
            painter.setBrush(GAP_COLOUR)
            painter.drawRect(QRectF(left + 1, min(top, ideal), width - 2, abs(ideal - top)))
        painter.setPen(QPen(text, 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(plot.left(), plot.bottom()), QPointF(plot.right(), plot.top()))
        painter.setPen(text)
        painter.drawText(
            QRectF(plot.left(), plot.bottom() + 2, plot.width(), line), Qt.AlignmentFlag.AlignCenter, "confidence"
        )
        for value in (0.0, 0.5, 1.0):
            y = plot.bottom() - value * plot.height()
            painter.drawText(
                QRectF(0, y - line / 2, plot.left() - 4, line), Qt.AlignmentFlag.AlignRight, f"{value:.1f}"
            )
        painter.save()
        painter.translate(line * 0.6, plot.center().y())
        painter.rotate(-90)
        painter.drawText(
            QRectF(-plot.height() / 2, -line / 2, plot.height(), line), Qt.AlignmentFlag.AlignCenter, "right"
        )
        painter.restore()
        painter.end()
