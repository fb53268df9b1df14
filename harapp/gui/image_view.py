"""The inspector: the current image large with its persons, captions, label buttons and label history."""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from harapp.core.errors import HarappError
from harapp.core.store import Project
from harapp.core.types import HistoryEntry, ImageRecord, Label, LabelQuality
from harapp.gui.image_canvas import ImageCanvas
from harapp.gui.labeling import ClassKey, class_keys
from harapp.gui.style import DISAGREE_COLOUR, PREDICTION_COLOUR, SOURCE_TEXT, class_colour, text_colour_on
from harapp.gui.thumbnails import ThumbnailLoader

INSPECTOR_SIZE = 1024
"""Longest side the inspector decodes images to; COCO photos are 640 wide, so this is full size for them."""


def _swatch(colour: QColor, side: int = 14) -> QIcon:
    """A small square of the class colour, so a button looks like the badges in the gallery."""
    pixmap = QPixmap(side, side)
    pixmap.fill(colour)
    return QIcon(pixmap)


def _chip(label: Label | None, names: Sequence[str]) -> str:
    """A label as a coloured chip plus where it came from, in rich text."""
    if label is None or label.class_name is None:
        return "<i>none</i>"
    colour = class_colour(label.class_name, names)
    source = SOURCE_TEXT.get(label.source, label.source)
    return (
        f"<span style='background:{colour.name()}; color:{text_colour_on(colour).name()};'>"
        f"&nbsp;{html.escape(label.class_name)}&nbsp;</span> <small>{html.escape(source)}</small>"
    )


class Inspector(QWidget):
    label_clicked = Signal(object)
    """A class name, or None for 'clear label'."""
    person_selected = Signal(object)
    """A person id, or None when labels go to the whole image again."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._record: ImageRecord | None = None
        self._keys: list[ClassKey] = []
        self._loader = ThumbnailLoader(INSPECTOR_SIZE, disk_cache=False, memory_items=6, threads=1, parent=self)
        self._loader.thumbnail_ready.connect(self._on_image_loaded)

        self.title = QLabel("No image selected")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setWordWrap(True)
        self.canvas = ImageCanvas()
        self.canvas.person_clicked.connect(self._on_person_clicked)
        self.target = QLabel()
        self.target.setToolTip("Where the label keys apply: the whole image, or the selected person")
        self.current_label = QLabel()
        self.current_label.setTextFormat(Qt.TextFormat.RichText)
        # The active model's opinion of this photo; guided curation adds its suggested label on this line.
        self.opinion = QLabel()
        self.opinion.setTextFormat(Qt.TextFormat.RichText)
        self.opinion.setToolTip("What the active model predicts for this photo (Train a model to see it)")
        self.suggestion = QLabel()
        self.suggestion.setTextFormat(Qt.TextFormat.RichText)
        self.suggestion.setWordWrap(True)
        self.suggestion.setToolTip(
            "Guided curation: a model that never saw this photo's label doubts it (or, for an unlabelled photo, "
            "guesses it). Enter gives the photo this class; 1-4 give another."
        )
        self.suggestion.hide()
        self.buttons_box = QWidget()
        self.buttons = QGridLayout(self.buttons_box)
        self.buttons.setContentsMargins(0, 0, 0, 0)
        self.captions = QLabel()
        self.captions.setWordWrap(True)
        self.captions.setTextFormat(Qt.TextFormat.RichText)
        self.captions.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.captions.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.captions.setToolTip("The image's COCO captions and the activity votes read from them")
        self.history = QListWidget()
        self.history.setToolTip("Label history of this image, newest first (Ctrl+Z undoes your last change)")
        self.history.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        # Captions and history share one tabbed box of limited height: the picture deserves the room.
        self.captions.setContentsMargins(6, 4, 6, 4)
        captions_scroll = QScrollArea()
        captions_scroll.setWidgetResizable(True)
        captions_scroll.setFrameShape(QFrame.Shape.NoFrame)
        captions_scroll.setWidget(self.captions)
        self.notes = QTabWidget()
        self.notes.addTab(captions_scroll, "Captions")
        self.notes.addTab(self.history, "History")
        self.notes.setMinimumHeight(120)
        self.notes.setMaximumHeight(160)
        self.notes.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        details = QWidget()
        lay = QVBoxLayout(details)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.target)
        lay.addWidget(self.current_label)
        lay.addWidget(self.opinion)
        lay.addWidget(self.suggestion)
        lay.addWidget(self.buttons_box)
        lay.addWidget(self.notes)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.canvas)
        splitter.addWidget(details)
        splitter.setStretchFactor(0, 5)
        splitter.setStretchFactor(1, 0)
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.title)
        layout.addWidget(splitter, 1)
        self._update_target()

    # -- content -------------------------------------------------------------------------------------------

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self._loader.clear()
        self._rebuild_buttons()
        self.show_image(None)

    def image_id(self) -> int | None:
        return self._record.id if self._record else None

    def show_image(self, image_id: int | None) -> None:
        if self._project is None or image_id is None:
            self._record = None
            self.title.setText("No image selected")
            self.canvas.set_content(QSize(), [], {}, [])
            self.canvas.set_image(None)
            self.captions.clear()
            self.history.clear()
            self.current_label.clear()
            self.opinion.clear()
            self._update_target()
            return
        changed = self._record is None or self._record.id != image_id
        try:
            self._record = self._project.image(image_id)
        except HarappError as exc:
            self._record = None
            self.title.setText(str(exc))
            return
        if changed:
            self.canvas.select_person(None)
            self.canvas.set_image(None, "loading…")
            self._request_image()
        self.refresh()
        if changed:
            self.person_selected.emit(None)

    def refresh(self) -> None:
        """Re-read the current image's labels, persons and history (after an edit, undo or redo)."""
        if self._project is None or self._record is None:
            return
        project, record = self._project, self._project.image(self._record.id)
        self._record = record
        names = project.class_names()
        coco = f" · COCO {record.coco_id}" if record.coco_id is not None else ""
        self.title.setText(
            f"<b>{html.escape(record.path.name)}</b><br>#{record.id}{coco} · {record.width}×{record.height}"
        )
        self.title.setToolTip(str(record.path))
        persons = project.persons(record.id)
        self.canvas.set_content(QSize(record.width, record.height), persons, project.person_labels(record.id), names)
        self._show_label(record, names, project.person_labels(record.id))
        self._show_captions(record)
        self._show_history(project.history(record.id, limit=50))
        self._update_target()

    def _request_image(self) -> None:
        assert self._record is not None
        image = self._loader.image(self._record.id)
        if image is not None:
            self.canvas.set_image(image)
        else:
            self._loader.request(self._record.id, self._record.path)

    def _on_image_loaded(self, image_id: int) -> None:
        if self._record is None or image_id != self._record.id:
            return
        image = self._loader.image(image_id)
        self.canvas.set_image(image, self._loader.error(image_id) or "")

    def _show_label(self, record: ImageRecord, names: Sequence[str], person_labels: dict[int, Label]) -> None:
        text = f"Image: {_chip(record.label, names)}"
        if record.label is None and record.uncertain:
            text += " <small>— captions are uncertain</small>"
        pid = self.canvas.selected_person
        if pid is not None:
            number = next((i for i, p in enumerate(self.canvas.persons(), start=1) if p.id == pid), "?")
            text += f"<br>Person {number}: {_chip(person_labels.get(pid), names)}"
        self.current_label.setText(text)

    def show_model_opinion(self, class_name: str | None, confidence: float | None, disagrees: bool) -> None:
        """The active model's prediction for the shown photo, or a hint when there is none."""
        if class_name is None:
            self.opinion.setText("<small>Model: no prediction for this photo</small>")
            return
        colour = DISAGREE_COLOUR if disagrees else PREDICTION_COLOUR
        share = f" {100 * confidence:.0f}%" if confidence is not None else ""
        style = f"background:{colour.name()}; color:white;"
        chip = f"<span style='{style}'>&nbsp;{html.escape(class_name)}{share}&nbsp;</span>"
        note = " <small>— disagrees with the label</small>" if disagrees else ""
        self.opinion.setText(f"Model: {chip}{note}")

    def show_suggestion(self, quality: LabelQuality | None, likely_wrong: bool, in_queue: bool) -> None:
        """Guided curation's word on the shown photo: the suggested class of a doubtful label, or the guess for
        an unlabelled photo of the label-next queue; nothing otherwise."""
        if quality is None or not (likely_wrong or in_queue):
            self.suggestion.hide()
            return
        chip = f"<b>{html.escape(quality.suggested_class)}</b>"
        if likely_wrong:
            text = (
                f"Suggested: {chip} <small>— the label {html.escape(quality.given_class or '')} scores "
                f"{100 * quality.score:.0f}% with a model that never saw it · Enter accepts</small>"
            )
        else:
            text = f"Label next: the label review guesses {chip} <small>· Enter accepts</small>"
        self.suggestion.setText(text)
        self.suggestion.show()

    def _show_captions(self, record: ImageRecord) -> None:
        votes = ", ".join(f"{k} {v}" for k, v in sorted(record.votes.items(), key=lambda kv: -kv[1]) if v)
        lines = [f"<small>Activity votes: {html.escape(votes) or 'none'}</small>"]
        lines += [f"• {html.escape(c)}" for c in record.captions] or ["<i>no captions</i>"]
        self.captions.setText("<br>".join(lines))

    def _show_history(self, entries: Sequence[HistoryEntry]) -> None:
        self.history.clear()
        self.notes.setTabText(1, f"History ({len(entries)})")
        for e in entries:
            who = f"person {e.person_id}: " if e.person_id else ""
            when = e.at.replace("T", " ")[:19]
            self.history.addItem(
                f"{when}  {who}{e.old_class or '–'} → {e.new_class or '–'}  ({e.new_source or e.reason}, {e.reason})"
            )

    # -- buttons and persons -------------------------------------------------------------------------------

    def _rebuild_buttons(self) -> None:
        while self.buttons.count():
            item = self.buttons.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.deleteLater()
        self._keys = class_keys(self._project.class_names()) if self._project is not None else []
        names = [k.name for k in self._keys]
        for i, key in enumerate(self._keys):
            button = QPushButton(key.caption())
            colour = class_colour(key.name, names)
            button.setIcon(_swatch(colour))
            keys = " or ".join(
                f"'{k}'" for k in (str(key.number) if key.number else "", (key.letter or "").upper()) if k
            )
            button.setToolTip(f"Label as {key.name} and go to the next image (keys {keys})")
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.clicked.connect(lambda _=False, n=key.name: self.label_clicked.emit(n))
            self.buttons.addWidget(button, i // 2, i % 2)
        if self._keys:
            clear = QPushButton("Clear label")
            clear.setToolTip(f"Remove the label ({QKeySequence(Qt.Key.Key_Delete).toString()} or 0)")
            clear.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            clear.clicked.connect(lambda: self.label_clicked.emit(None))
            self.buttons.addWidget(clear, (len(self._keys) + 1) // 2, 0, 1, 2)

    def label_buttons(self) -> list[QPushButton]:
        items = (self.buttons.itemAt(i) for i in range(self.buttons.count()))
        return [w for item in items if item is not None and isinstance(w := item.widget(), QPushButton)]

    def _on_person_clicked(self, person_id: int | None) -> None:
        self.refresh()
        self.person_selected.emit(person_id)

    def select_person(self, person_id: int | None) -> None:
        self.canvas.select_person(person_id)
        self.refresh()
        self.person_selected.emit(person_id)

    def select_next_person(self, after: int) -> None:
        """After labelling a person, go to the next one; after the last, back to the whole image."""
        ids = [p.id for p in self.canvas.persons()]
        following = ids[ids.index(after) + 1 :] if after in ids else []
        self.select_person(following[0] if following else None)

    def toggle_keypoints(self) -> None:
        self.canvas.show_keypoints = not self.canvas.show_keypoints
        self.canvas.update()

    def _update_target(self) -> None:
        persons = self.canvas.persons()
        pid = self.canvas.selected_person
        if pid is not None:
            number = next((i for i, p in enumerate(persons, start=1) if p.id == pid), "?")
            self.target.setText(f"Labelling <b>person {number}</b> — click outside the boxes for the whole image")
        elif persons:
            whom = "the person" if len(persons) == 1 else f"one of {len(persons)} persons"
            self.target.setText(f"Labelling the <b>whole image</b> — click a box to label {whom}")
        else:
            self.target.setText("Labelling the <b>whole image</b>")

    def shutdown(self) -> None:
        self._loader.shutdown()
