"""The project's trained models (version, kind, metrics) with a way to pick the active one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from harapp.core.types import ModelRecord
from harapp.ml.kinds import kind_label, mode_label

COLUMNS = ("Active", "Version", "Model", "Mode", "Accuracy", "Macro F1", "Labels", "Trained")
COLUMN_TIPS = {
    "Accuracy": "Share of the held-out test photos the model got right",
    "Macro F1": "F1 averaged over the classes, so a rare class counts as much as a common one",
    "Labels": "The label revision the model was trained on: later corrections are not in it",
    "Trained": "When the run finished",
}


def model_caption(model: ModelRecord) -> str:
    """How a person names a model: 'v3 · EfficientNet-Lite0 linear probe'."""
    kind = kind_label(model.kind)
    mode = mode_label(model.mode)
    return f"v{model.id} · {kind} {mode}"


def _pct(value: object) -> str:
    if not isinstance(value, (int, float, str)):
        return "-"
    try:
        return f"{100 * float(value):.1f}%"
    except ValueError:
        return "-"


class ModelsTable(QWidget):
    """Lists ``project.models()``; "Use selected" (or a double-click) asks for that model to become active."""

    activate_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # Every column as wide as its longest entry (the page is wide enough); the last one takes the rest.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.table.setWordWrap(False)
        for col, name in enumerate(COLUMNS):
            header_item = self.table.horizontalHeaderItem(col)
            if name in COLUMN_TIPS and header_item is not None:
                header_item.setToolTip(COLUMN_TIPS[name])
        self.table.doubleClicked.connect(lambda _index: self._use_selected())
        self.table.itemSelectionChanged.connect(self._update_button)
        self.use_button = QPushButton("Use selected model", self)
        self.use_button.setToolTip("Make the selected model the one used for predictions")
        self.use_button.clicked.connect(self._use_selected)
        self.empty_label = QLabel("No trained models yet.", self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.empty_label)
        buttons.addStretch(1)
        buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        self._ids: list[int] = []
        self._update_button()

    def set_models(self, models: list[ModelRecord]) -> None:
        """Fill from ModelRecords, newest first."""
        ordered = sorted(models, key=lambda m: m.id, reverse=True)
        self._ids = [m.id for m in ordered]
        self.table.setRowCount(len(ordered))
        for row, m in enumerate(ordered):
            metrics = m.metrics or {}
            values = (
                "\u2714" if m.active else "",
                f"v{m.id}",
                kind_label(m.kind),
                mode_label(m.mode),
                _pct(metrics.get("accuracy")),
                _pct(metrics.get("macro_f1")),
                f"rev. {m.label_revision}",
                str(m.created_at)[:16].replace("T", " "),
            )
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, m.id)
                item.setToolTip(f"{m.name}\n{m.path}")
                if col == 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                    item.setToolTip("active model" if m.active else "")
                self.table.setItem(row, col, item)
        self.empty_label.setVisible(not ordered)
        self._update_button()

    def model_ids(self) -> list[int]:
        return list(self._ids)

    def select_model(self, model_id: int) -> None:
        if model_id in self._ids:
            self.table.selectRow(self._ids.index(model_id))

    def selected_model(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self._ids[rows[0].row()] if rows else None

    def _update_button(self) -> None:
        self.use_button.setEnabled(self.selected_model() is not None)

    def _use_selected(self) -> None:
        model_id = self.selected_model()
        if model_id is not None:
            self.activate_requested.emit(model_id)
