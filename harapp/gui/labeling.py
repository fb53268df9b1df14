"""Keyboard-first labelling with undo: every change goes to the store at once, undo replays its history.

Keys (on the gallery and the inspector): 1-9 pick the class at that position, each class's mnemonic letter
picks it too, Delete/Backspace/0 clears; the label is saved and the next image selected. A/D move back and
forward (arrows work as in any list). Undo and redo go through QUndoStack commands that call
``Project.revert``/``Project.reapply`` on the history entries the edit wrote, so undo also survives in the
store's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent, QUndoCommand, QUndoStack

from harapp.core.errors import HarappError
from harapp.core.store import Project
from harapp.core.types import HistoryEntry
from harapp.gui.gallery_model import GalleryRow, Role
from harapp.gui.gallery_proxy import GalleryProxy
from harapp.gui.gallery_view import GalleryView

RESERVED_LETTERS = frozenset("adkz")
"""Letters that already move (A/D), toggle keypoints (K) or undo (Z), so no class may take them."""


@dataclass(frozen=True)
class ClassKey:
    name: str
    number: int | None
    """1-9 for the first nine classes, None for the rest."""
    letter: str | None
    """A lower-case mnemonic letter from the class name, or None when every letter was taken."""

    def caption(self) -> str:
        parts = [str(self.number)] if self.number else []
        parts.append(self.name)
        return " ".join(parts)


def class_keys(names: Sequence[str]) -> list[ClassKey]:
    """Keys per class: its number and its first letter; on a clash (sitting/standing) the next free letter."""
    used: set[str] = set()
    keys = []
    for position, name in enumerate(names):
        letter = next((c for c in name.lower() if c.isalpha() and c not in used and c not in RESERVED_LETTERS), None)
        if letter:
            used.add(letter)
        keys.append(ClassKey(name, position + 1 if position < 9 else None, letter))
    return keys


class LabelCommand(QUndoCommand):
    """An edit that has already been written; undo reverts its history entries, redo reapplies them."""

    def __init__(
        self, controller: LabelingController, entries: Sequence[HistoryEntry], text: str, focus_image: int
    ) -> None:
        super().__init__(text)
        self._controller = controller
        self._entry_ids = [e.id for e in entries]
        self._image_ids = sorted({e.image_id for e in entries})
        self._focus_image = focus_image
        """The image the edit was made on: undo and redo select it again, so the person sees what changed."""
        self._done = True

    def redo(self) -> None:
        if self._done:  # QUndoStack.push calls redo; the change is already in the store
            return
        self._controller._replay(lambda p: p.reapply(self._entry_ids), self._image_ids)
        self._done = True
        self._controller.replayed.emit(f"Redone: {self.text()}", self._focus_image)

    def undo(self) -> None:
        self._controller._replay(lambda p: p.revert(self._entry_ids), self._image_ids)
        self._done = False
        self._controller.replayed.emit(f"Undone: {self.text()}", self._focus_image)


class LabelingController(QObject):
    """Turns keys and buttons into store edits on the gallery's current image, selection or person."""

    labels_changed = Signal(list)
    """Image ids whose labels changed (edit, undo or redo); the gallery refreshes those rows."""
    replayed = Signal(str, int)
    """After an undo or redo: what was undone or redone, in words, and the image it was made on."""
    person_labelled = Signal(int, int)
    error = Signal(str)
    """A message for the status bar: an edit failed, or a key could not act (and why)."""
    keypoints_toggled = Signal()

    def __init__(self, view: GalleryView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.undo_stack = QUndoStack(self)
        self._project: Project | None = None
        self.target_person: int | None = None
        """When a person box is selected in the inspector, keys label that person instead of the image."""
        self.last_edit = ""
        """The latest edit in words (the status bar shows it)."""

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self.target_person = None
        self.undo_stack.clear()

    def class_keys(self) -> list[ClassKey]:
        return class_keys(self._project.class_names()) if self._project is not None else []

    # -- edits ---------------------------------------------------------------------------------------------

    def label_current(self, class_name: str | None, advance: bool = True) -> bool:
        """Label the selection (several images: one bulk edit) or the current image, then move on."""
        if self._project is None:
            return False
        selected = self.view.selected_image_ids()
        if len(selected) > 1:
            return self.label_images(selected, class_name)
        image_id = self.view.current_image_id()
        if image_id is None:
            return False
        if self.target_person is not None:
            return self.label_person(image_id, self.target_person, class_name)
        row_before = self.view.currentIndex().row()
        if not self.label_images([image_id], class_name):
            return False
        if advance:
            self._advance_from(image_id, row_before)
        return True

    def label_images(self, image_ids: Sequence[int], class_name: str | None) -> bool:
        if self._project is None or not image_ids:
            return False
        try:
            if len(image_ids) == 1:
                entry = self._project.set_label(image_ids[0], class_name, "human", reason="edit")
                entries = [entry] if entry else []
            else:
                entries = self._project.set_labels([(i, class_name) for i in image_ids], source="human")
        except HarappError as exc:
            self.error.emit(str(exc))
            return False
        noun = self.image_name(image_ids[0]) if len(image_ids) == 1 else f"{len(image_ids)} images"
        self._record(entries, f"Label {noun} as {class_name}" if class_name else f"Clear label of {noun}", image_ids[0])
        return True

    def label_person(self, image_id: int, person_id: int, class_name: str | None) -> bool:
        if self._project is None:
            return False
        try:
            entry = self._project.set_label(image_id, class_name, "human", person_id=person_id, reason="edit")
        except HarappError as exc:
            self.error.emit(str(exc))
            return False
        whom = f"person {self.person_number(image_id, person_id)} in {self.image_name(image_id)}"
        text = f"Label {whom} as {class_name}" if class_name else f"Clear label of {whom}"
        self._record([entry] if entry else [], text, image_id)
        self.person_labelled.emit(image_id, person_id)
        return True

    def image_name(self, image_id: int) -> str:
        """The file name a person knows an image by (internal ids mean nothing to them)."""
        if self._project is None:
            return f"image #{image_id}"
        try:
            return self._project.image(image_id).path.name
        except HarappError:
            return f"image #{image_id}"

    def person_number(self, image_id: int, person_id: int) -> int | str:
        """The person's number as the image view shows it (1, 2, ...), not the project-wide id."""
        if self._project is None:
            return person_id
        ids = [p.id for p in self._project.persons(image_id)]
        return ids.index(person_id) + 1 if person_id in ids else person_id

    def _record(self, entries: Sequence[HistoryEntry], text: str, focus_image: int) -> None:
        if not entries:  # nothing changed: no undo step, nothing to refresh
            return
        self.undo_stack.push(LabelCommand(self, entries, text, focus_image))
        self.last_edit = text
        self.labels_changed.emit(sorted({e.image_id for e in entries}))

    def _replay(self, action, image_ids: list[int]) -> None:  # noqa: ANN001 - Project -> entries
        if self._project is None:
            return
        try:
            action(self._project)
        except HarappError as exc:
            self.error.emit(str(exc))
        self.labels_changed.emit(image_ids)

    def _advance_from(self, image_id: int, row_before: int) -> None:
        model = self.view.model()
        if model is None:
            return
        row_now = model.proxy_row_of(image_id) if isinstance(model, GalleryProxy) else row_before
        # When a filter hid the image just labelled, the next image has moved up into its row.
        target = row_now + 1 if row_now >= 0 else row_before
        if model.rowCount():
            self.view.select_row(min(target, model.rowCount() - 1))

    # -- keys ----------------------------------------------------------------------------------------------

    def install_on(self, widget: QObject) -> None:
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            return self.handle_key(event)
        return False

    def handle_key(self, event: QKeyEvent) -> bool:
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if modifiers & (
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.MetaModifier
        ):
            return False
        text = event.text()
        key = event.key()
        if modifiers & Qt.KeyboardModifier.ShiftModifier:
            return False
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace, Qt.Key.Key_0):
            return self._label_or_explain(None)
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            return self.accept_suggestion()
        if key == Qt.Key.Key_A:
            self.view.move_current(-1)
            return True
        if key == Qt.Key.Key_D:
            self.view.move_current(1)
            return True
        if key == Qt.Key.Key_K:
            self.keypoints_toggled.emit()
            return True
        name = self._class_for_text(text)
        if name is not None:
            self._label_or_explain(name)
            return True
        if len(text) == 1 and text.isdigit():
            self.error.emit(self._no_class_message(text))
            return True
        return False

    def current_suggestion(self) -> str | None:
        """Guided curation's class for the current photo (see GalleryRow.suggestion), or None."""
        index = self.view.currentIndex()
        row = index.data(Role.ROW) if index.isValid() else None
        return row.suggestion if isinstance(row, GalleryRow) else None

    def accept_suggestion(self) -> bool:
        """Enter: give the current photo its suggested (or guessed) class and move on; say why when it cannot."""
        if self._project is None:
            self.error.emit("Open or import a project first: Enter accepts a suggested label.")
            return True
        if len(self.view.selected_image_ids()) > 1 or self.target_person is not None:
            self.error.emit("Enter accepts one photo's suggested label at a time: select a single photo.")
            return True
        suggestion = self.current_suggestion()
        if suggestion is None:
            self.error.emit(
                "No suggested label for this photo: Review ▸ Likely mislabelled and Label next list the photos "
                "that have one (after a model is trained)."
            )
            return True
        self.label_current(suggestion)
        return True

    def _label_or_explain(self, class_name: str | None) -> bool:
        """Label, or say in the status bar why the key cannot (a silent key looks like a saved label)."""
        if self._project is None:
            self.error.emit("Open or import a project first: keys label its photos.")
            return True
        if self.view.current_image_id() is None and len(self.view.selected_image_ids()) < 2:
            shown = self.view.model().rowCount() if self.view.model() is not None else 0
            why = "Select a photo first" if shown else "No photo is shown (the filters hide them all)"
            self.error.emit(f"{why}: there is nothing to label.")
            return True
        self.label_current(class_name)
        return True

    def _no_class_message(self, digit: str) -> str:
        keys = " · ".join(k.caption() for k in self.class_keys() if k.number)
        if not keys:
            return "The project has no classes yet: add them with Edit ▸ Classes…"
        return f"No class has the key {digit}: the keys are {keys}."

    def _class_for_text(self, text: str) -> str | None:
        if len(text) != 1:
            return None
        for key in self.class_keys():
            if (text.isdigit() and key.number == int(text)) or (key.letter and text.lower() == key.letter):
                return key.name
        return None
