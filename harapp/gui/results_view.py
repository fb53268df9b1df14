"""A model's test results: accuracy in one line, the confusion matrix, and precision and recall per class.

Precision and recall beside the matrix say what the matrix only implies: how often the model is right when it
says "sitting" (precision), and how many of the sitting photos it finds (recall). Support is the number of test
photos of the class, so a 100% on two photos reads as what it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from harapp.gui.confusion_view import ConfusionMatrixView
from harapp.gui.reliability_view import ReliabilityDiagram
from harapp.ml.metrics import Metrics

PER_CLASS_COLUMNS = ("Class", "Precision", "Recall", "F1", "Test photos")


class ResultsView(QWidget):
    cell_clicked = Signal(str, str, list)
    """A confusion-matrix cell: true class, predicted class, the image ids behind it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.metrics: Metrics | None = None
        self.metrics_label = QLabel("", self)
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.confusion = ConfusionMatrixView(self)
        self.confusion.cell_clicked.connect(self.cell_clicked)
        self.per_class = QTableWidget(0, len(PER_CLASS_COLUMNS), self)
        self.per_class.setHorizontalHeaderLabels(list(PER_CLASS_COLUMNS))
        self.per_class.verticalHeader().setVisible(False)
        self.per_class.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.per_class.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.per_class.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.per_class.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.per_class.setToolTip(
            "Precision: of the test photos the model gave this class, the share that really are.\n"
            "Recall: of the test photos of this class, the share the model found.\n"
            "F1: their harmonic mean. Test photos: how many the figures rest on."
        )
        self.reliability = ReliabilityDiagram(self)
        side = QVBoxLayout()
        side.addWidget(self.per_class, 1)
        side.addWidget(self.reliability, 1)
        body = QHBoxLayout()
        body.addWidget(self.confusion, 3)
        body.addLayout(side, 2)  # hidden until there are results: the matrix's hint then has the room
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.metrics_label)
        layout.addLayout(body, 1)
        self.clear()

    def clear(self, text: str = "") -> None:
        self.metrics = None
        self.metrics_label.setText(text)
        self.confusion.set_metrics(None)
        self.per_class.setRowCount(0)
        self.per_class.hide()  # an empty table says nothing the matrix's own hint does not
        self.reliability.set_calibration(None)

    def show_metrics(self, metrics: Metrics, true_classes: Mapping[int, int] | None = None, caption: str = "") -> None:
        """Show a model's test metrics; ``caption`` names the model (e.g. 'v3 · EfficientNet-Lite0 linear probe')."""
        self.metrics = metrics
        self.confusion.set_metrics(metrics, true_classes)
        who = f"{caption}: " if caption else ""
        self.metrics_label.setText(
            f"{who}Test accuracy {100 * metrics.accuracy:.1f}% · macro F1 {100 * metrics.macro_f1:.1f}% "
            f"on {len(metrics.test_image_ids)} held-out images. Click a cell to show its images."
        )
        if metrics.calibration is not None:
            self.metrics_label.setText(self.metrics_label.text() + " " + calibration_sentence(metrics))
        self.reliability.set_calibration(metrics.calibration, metrics.class_names)
        rows = [name for name in metrics.class_names if name in metrics.per_class]
        self.per_class.setRowCount(len(rows))
        self.per_class.show()
        for row, name in enumerate(rows):
            figures = metrics.per_class[name]
            support = int(figures.get("support", 0))
            values = [name] + [
                f"{100 * figures.get(key, 0.0):.0f}%" if support or key == "precision" else "–"
                for key in ("precision", "recall", "f1")
            ]
            values.append(str(support))
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                if col:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.per_class.setItem(row, col, item)

    def precision_recall(self) -> dict[str, tuple[str, str]]:
        """{class: (precision text, recall text)} as shown (tests)."""

        def text(row: int, col: int) -> str:
            item = self.per_class.item(row, col)
            return item.text() if item is not None else ""

        return {text(row, 0): (text(row, 1), text(row, 2)) for row in range(self.per_class.rowCount())}


def calibration_sentence(metrics: Metrics) -> str:
    """What the ECE says, read against what so few held-out images can show (ECE is never 0 on a few dozen)."""
    c = metrics.calibration
    if c is None:
        return ""
    n = len(metrics.test_image_ids)
    if c.ece_if_calibrated is None:  # metrics from before the comparison was stored
        return f"Calibration error (ECE) {c.ece:.3f}."
    if c.ece <= c.ece_if_calibrated:
        return (
            f"Calibration error (ECE) {c.ece:.3f}: on {n} held-out images perfectly calibrated bars would show up "
            f"to {c.ece_if_calibrated:.3f}, so the bars say how sure the model is, and it is right about as often."
        )
    return (
        f"Calibration error (ECE) {c.ece:.3f}: more than the {c.ece_if_calibrated:.3f} that {n} held-out images "
        "show for perfectly calibrated bars, so take the bars as a rough guide (the diagram shows where they are off)."
    )
