"""Drop, paste or open photos and see the active model's prediction with a confidence bar per class.

Predictions run in a PredictWorker off the GUI thread; every input gets a row at once ("predicting…") that
fills in when its result arrives. A file that is not a readable image gets an inline error row.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QMimeData, QObject, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFontMetrics,
    QImage,
    QPainter,
    QPaintEvent,
    QPalette,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from harapp.core.image_files import IMAGE_SUFFIXES, expand_image_paths
from harapp.core.store import Project
from harapp.core.types import Box
from harapp.gui.elided_label import ElidedLabel
from harapp.gui.icons import icon
from harapp.gui.models_table import model_caption
from harapp.gui.person_picker import PersonPicker, read_photo, thumbnail_with_boxes
from harapp.gui.predict_jobs import THUMB_SIZE, ImageInput, PredictOutcome, PredictWorker, qimage_to_input
from harapp.gui.style import ErrorTextStyle, is_dark
from harapp.gui.workers import JobHandle, start_worker
from harapp.ml.defaults import preferred_device

log = logging.getLogger(__name__)

MAX_INPUTS = 500
ROW_MAX_WIDTH = 760
"""Rows stop growing here: on a wide screen a bar across the whole window is harder to read, not easier."""
COLUMN_WIDTH = 600
"""A wide page shows the rows in columns of at least this width (two at 1366 px, three at 1920 px)."""
NO_MODEL_TEXT = "Train a model first: no active model to predict with (see Train, Ctrl+2)."
DROP_HINT = "Drop photos or folders here\npaste an image with Ctrl+V, or click Open…"


def expand_paths(paths: Iterable[Path], limit: int = MAX_INPUTS) -> tuple[list[Path], int]:
    """Files as given plus image files found in folders, at most ``limit``; returns (paths, how many more)."""
    found = expand_image_paths(paths)
    return found[:limit], max(0, len(found) - limit)


class ProbabilityBars(QWidget):
    """Class name, a horizontal bar and the percentage, one line per class, most likely first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._values: list[tuple[str, float]] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_values(self, values: Iterable[tuple[str, float]]) -> None:
        self._values = sorted(((str(n), float(p)) for n, p in values), key=lambda v: -v[1])
        self.setAccessibleDescription(", ".join(f"{n} {100 * p:.0f} percent" for n, p in self._values))
        self.updateGeometry()
        self.update()

    def values(self) -> list[tuple[str, float]]:
        return list(self._values)

    def _line_height(self) -> int:
        return QFontMetrics(self.font()).height() + 4

    def sizeHint(self) -> QSize:
        return QSize(320, max(1, len(self._values)) * self._line_height())

    def minimumSizeHint(self) -> QSize:
        return QSize(160, max(1, len(self._values)) * self._line_height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        pal = self.palette()
        fm = QFontMetrics(self.font())
        name_w = max((fm.horizontalAdvance(n) for n, _ in self._values), default=0) + 8
        pct_w = fm.horizontalAdvance("100.0%") + 6
        bar_w = max(20, self.width() - name_w - pct_w)
        line = self._line_height()
        top_color = pal.color(QPalette.ColorRole.Highlight)
        other = QColor("#9ca3af") if not is_dark(pal) else QColor("#6b7280")
        track = QColor(pal.color(QPalette.ColorRole.WindowText))
        track.setAlpha(25)
        for i, (name, prob) in enumerate(self._values):
            y = i * line
            painter.setPen(pal.color(QPalette.ColorRole.WindowText))
            painter.drawText(0, y, name_w - 6, line, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, name)
            painter.fillRect(name_w, y + 3, bar_w, line - 6, track)
            painter.fillRect(
                name_w, y + 3, int(round(bar_w * max(0.0, min(1.0, prob)))), line - 6, top_color if i == 0 else other
            )
            painter.drawText(
                name_w + bar_w + 6,
                y,
                pct_w,
                line,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                f"{100 * prob:.1f}%",
            )
        painter.end()


class PredictionRow(QFrame):
    """One input: thumbnail (with the person boxes the model used), name, predicted class and bars -- or an
    error message. Clicking the thumbnail asks which person the prediction should be about."""

    choose_person = Signal(object)
    """This row, when its thumbnail is clicked after a prediction."""

    def __init__(self, source: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.error: str | None = None
        self.item: Path | ImageInput | None = None
        """What was predicted (the panel sets it), so a person chosen later can be predicted again."""
        self.index = -1
        self.outcome: PredictOutcome | None = None
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMaximumWidth(ROW_MAX_WIDTH)
        self.thumb = QLabel(self)
        self.thumb.setFixedSize(THUMB_SIZE, THUMB_SIZE)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.name_label = ElidedLabel(Path(source).name or source, self)
        self.name_label.setToolTip(source)
        self.result_label = QLabel("Predicting…", self)
        font = self.result_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.result_label.setFont(font)
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.bars = ProbabilityBars(self)
        self.bars.hide()
        self.person_label = QLabel(self)
        self.person_label.setWordWrap(True)
        self.person_label.hide()
        self.thumb.installEventFilter(self)
        text = QVBoxLayout()
        text.addWidget(self.name_label)
        text.addWidget(self.result_label)
        text.addWidget(self.person_label)
        text.addWidget(self.bars)
        text.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.thumb, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(text, 1)

    def show_outcome(self, outcome: PredictOutcome) -> None:
        if outcome.error is not None or outcome.prediction is None:
            self.show_error(outcome.error or "no prediction")
            return
        pred = outcome.prediction
        self.outcome = outcome
        boxes = [box for box, _, _ in outcome.people] or ([pred.person_box] if pred.person_box else [])
        if outcome.thumb_rgba:
            w, h = outcome.thumb_size
            image = QImage(outcome.thumb_rgba, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
            self.thumb.setPixmap(thumbnail_with_boxes(image, pred.image_size, boxes, pred.person_box))
        self.result_label.setText(f"{pred.top_class}  {100 * pred.top_probability:.1f}%")
        self.bars.set_values(zip(pred.class_names, pred.probabilities, strict=True))
        self.bars.show()
        self._show_person(pred, outcome)
        if "person" in pred.views or "pose" in pred.views:
            self.thumb.setCursor(Qt.CursorShape.PointingHandCursor)
            self.thumb.setToolTip("Click to choose the person the prediction is about")

    def _show_person(self, pred: Any, outcome: PredictOutcome) -> None:
        """Which person the model looked at, in words, and the others found in the photo."""
        note = pred.person_note()
        if len(outcome.people) > 1:
            others = ", ".join(f"{cls} {100 * p:.0f}%" for _, cls, p in outcome.people)
            note += f" · {len(outcome.people)} people: {others}"
        self.person_label.setText(f"<small>{html.escape(note)}</small>")
        self.person_label.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.thumb and event.type() == QEvent.Type.MouseButtonRelease and self.outcome is not None:
            pred = self.outcome.prediction
            if pred is not None and ("person" in pred.views or "pose" in pred.views):
                self.choose_person.emit(self)
                return True
        return super().eventFilter(watched, event)

    def show_error(self, message: str) -> None:
        self.error = message
        self.thumb.setFixedSize(THUMB_SIZE, THUMB_SIZE // 2)  # no picture to show: keep error rows compact
        self.thumb.setText("\u26a0")
        big = self.thumb.font()
        big.setPointSizeF(big.pointSizeF() * 2.5)
        self.thumb.setFont(big)
        self.result_label.setText(f"Cannot predict: {message}")
        ErrorTextStyle(self.result_label)
        self.bars.hide()


class PredictionPanel(QWidget):
    prediction_ready = Signal(object)
    """Emitted with each PredictOutcome as it arrives (tests, status bar)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.model_warning: str | None = None
        """Set when the active model predates a change of the project's classes."""
        self.checkpoint: Path | None = None
        self.model_name = ""
        self.device = preferred_device()
        self.rows: list[PredictionRow] = []
        self._row_at: dict[int, PredictionRow] = {}
        self._next_index = 0  # never reused, so a job still running after Clear cannot fill a new row
        self.jobs: list[JobHandle] = []
        self.picker_answer: Callable[[PersonPicker], Box | None] | None = None
        """Tests: answers the 'which person?' dialog instead of a person."""
        self.setAcceptDrops(True)
        # One line, elided, with the whole text as its tooltip: a long model name must not wrap over three lines.
        self.status_label = ElidedLabel("", self)
        self.open_button = QPushButton("&Open…", self)
        self.open_button.setToolTip("Choose photos to classify (you can also drop them here or paste with Ctrl+V)")
        self.open_button.setIcon(icon("open"))
        self.open_button.clicked.connect(self.open_files)
        self.clear_button = QPushButton("Clear", self)
        self.clear_button.clicked.connect(self.clear)
        header = QHBoxLayout()
        header.addWidget(self.status_label, 1)
        header.addWidget(self.open_button)
        header.addWidget(self.clear_button)
        self._rows_box = QWidget()
        self._rows_layout = QVBoxLayout(self._rows_box)
        self.hint_label = QLabel(DROP_HINT, self._rows_box)
        self.hint_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint_label.setWordWrap(True)
        self.hint_label.setEnabled(False)  # the disabled palette greys it: a hint, not content
        hint_font = self.hint_label.font()
        hint_font.setPointSizeF(hint_font.pointSizeF() * 1.2)
        self.hint_label.setFont(hint_font)
        self._rows_layout.addWidget(self.hint_label, 1)
        self._grid = QGridLayout()
        self._grid.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self._rows_layout.addLayout(self._grid)
        self._rows_layout.addStretch(1)
        self._columns = 1
        self.rows_scroll = QScrollArea(self)
        self.rows_scroll.setWidgetResizable(True)
        self.rows_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows shrink instead
        self.rows_scroll.setWidget(self._rows_box)
        self.rows_scroll.viewport().installEventFilter(self)  # re-flow the columns when the page's width changes
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(self.rows_scroll, 1)
        # Ctrl+V is the main window's Edit menu action (window-wide); a shortcut here too would make it ambiguous.
        self._update_status()

    # -- model -----------------------------------------------------------------------------------------
    def set_project(self, project: Project | None) -> None:
        self.project = project
        active = project.active_model() if project is not None else None
        self.model_warning = project.stale_model_reason(active) if project is not None and active else None
        if active is None:
            self.set_checkpoint(None)
        else:
            self.set_checkpoint(active.path, model_caption(active))

    def refresh_model(self, _model_id: int | None = None) -> None:
        """Re-read the project's active model (connect to TrainingPanel.active_model_changed)."""
        self.set_project(self.project)

    def set_checkpoint(self, path: Path | str | None, name: str | None = None) -> None:
        self.checkpoint = Path(path) if path is not None else None
        self.model_name = name or (self.checkpoint.stem if self.checkpoint is not None else "")
        self._update_status()

    def _update_status(self, extra: str = "") -> None:
        text = NO_MODEL_TEXT if self.checkpoint is None else f"Model: {self.model_name}"
        if self.checkpoint is not None and self.model_warning:
            text += f". Note: {self.model_warning}"
        self.status_label.setText(f"{text} {extra}".strip())

    # -- inputs ----------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        if self.take_mime(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def paste(self) -> None:
        if not self.take_mime(QApplication.clipboard().mimeData()):
            self._update_status("The clipboard holds no image or file.")

    def take_mime(self, mime: QMimeData) -> bool:
        """Predict the files or the image a drop or the clipboard carries; False when it holds neither."""
        if mime is None:
            return False
        local = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
        if local:
            self.predict_paths(local)
            return True
        if mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.predict_images([image])
                return True
        return False

    def open_files(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        files, _ = QFileDialog.getOpenFileNames(self, "Classify photos", "", f"Images ({patterns});;All files (*)")
        if files:
            self.predict_paths([Path(f) for f in files])

    def predict_paths(self, paths: Iterable[Path]) -> None:
        files, skipped = expand_paths(paths)
        if skipped:
            self._update_status(f"Only the first {MAX_INPUTS} images are shown ({skipped} more skipped).")
        self._predict(list(files))

    def predict_images(self, images: Iterable[QImage]) -> None:
        self._predict(
            [qimage_to_input(img, f"<pasted image {self._next_index + i + 1}>") for i, img in enumerate(images)]
        )

    def _predict(self, inputs: list[Path | ImageInput]) -> None:
        if not inputs:
            self._update_status("Nothing to classify: no image files found there.")
            return
        if self.checkpoint is None:
            self._update_status()
            return
        first = self._next_index
        self._next_index += len(inputs)
        for offset, item in enumerate(inputs):
            row = PredictionRow(item.name if isinstance(item, ImageInput) else str(item), self._rows_box)
            row.item, row.index = item, first + offset
            row.choose_person.connect(self.choose_person)
            self.rows.append(row)
            count = len(self.rows) - 1
            self._grid.addWidget(row, count // self._columns, count % self._columns)
            self._row_at[first + offset] = row
        self.hint_label.hide()
        worker = PredictWorker(self.checkpoint, inputs, device=self.device, first_index=first)
        job = start_worker(worker, name="harapp-predict", parent=self)
        job.progressed.connect(self._on_outcome)
        end = first + len(inputs)
        job.failed.connect(lambda msg, a=first, b=end: self._on_job_failed(a, b, msg))
        self.jobs.append(job)
        job.done.connect(lambda j=job: self.jobs.remove(j) if j in self.jobs else None)

    def choose_person(self, row: PredictionRow) -> Box | None:
        """Ask which person the row's prediction is about; predict again with that person."""
        outcome = row.outcome
        if outcome is None or outcome.prediction is None or row.item is None or self.checkpoint is None:
            return None
        source: str | bytes = row.item.png if isinstance(row.item, ImageInput) else str(row.item)
        photo = read_photo(source)
        if photo.isNull():
            self._update_status(f"Cannot show {row.source} to choose a person.")
            return None
        pred = outcome.prediction
        boxes = [box for box, _, _ in outcome.people] or ([pred.person_box] if pred.person_box else [])
        picker = PersonPicker(photo, boxes, pred.person_box, self)
        if self.picker_answer is not None:  # tests answer for the person
            box = self.picker_answer(picker)
        else:
            box = picker.chosen_box() if picker.exec() == QDialog.DialogCode.Accepted else None
        if box is None:
            return None
        self.repredict(row, box)
        return box

    def repredict(self, row: PredictionRow, box: Box) -> None:
        """Predict one row's photo again, about the person in `box`."""
        if row.item is None or self.checkpoint is None:
            return
        row.result_label.setText("Predicting…")
        worker = PredictWorker(self.checkpoint, [row.item], device=self.device, first_index=row.index, user_box=box)
        job = start_worker(worker, name="harapp-predict-person", parent=self)
        job.progressed.connect(self._on_outcome)
        self.jobs.append(job)
        job.done.connect(lambda j=job: self.jobs.remove(j) if j in self.jobs else None)

    def _on_outcome(self, outcome: PredictOutcome) -> None:
        row = self._row_at.get(outcome.index)
        if row is not None:
            row.show_outcome(outcome)
            self.rows_scroll.ensureWidgetVisible(row)
        self.prediction_ready.emit(outcome)

    def _on_job_failed(self, first: int, end: int, message: str) -> None:
        # The whole job failed (e.g. the checkpoint is unreadable): every row it owned says why.
        for index in range(first, end):
            row = self._row_at.get(index)
            if row is not None and row.error is None and row.bars.isHidden():
                row.show_error(message)
        self._update_status(message)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self.rows_scroll.viewport() and event.type() == QEvent.Type.Resize:
            columns = max(1, self.rows_scroll.viewport().width() // COLUMN_WIDTH)
            if columns != self._columns:
                self._columns = columns
                for row in self.rows:
                    self._grid.removeWidget(row)
                for index, row in enumerate(self.rows):
                    self._grid.addWidget(row, index // columns, index % columns)
        return super().eventFilter(watched, event)

    def columns(self) -> int:
        return self._columns

    def clear(self) -> None:
        for job in list(self.jobs):
            job.cancel()
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows.clear()
        self._row_at.clear()
        self.hint_label.show()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return all(job.cancel_and_wait(timeout_ms) for job in list(self.jobs))
