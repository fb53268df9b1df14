"""Edit ▸ Classes…: add, rename and merge classes, with the command line's undo.

Each change is written at once by the store (as `harapp classes add|rename|merge` does) and pushed on the
window's undo stack, so Ctrl+Z undoes it in turn with the label edits around it; undoing calls the store's
``undo_class_op``, the very function behind `harapp classes undo`. The dialog's own Undo button does the same,
and also reaches a class change made before this session (or on the command line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from harapp.core.errors import HarappError
from harapp.core.store import Project

Report = Callable[[str], None]


class ClassCommand(QUndoCommand):
    """A class change already written; undo reverts the latest class change in the store, redo repeats it."""

    def __init__(self, project: Project, text: str, again: Callable[[Project], object], changed: Callable[[], None],
                 report: Report) -> None:  # fmt: skip
        super().__init__(text)
        self._project = project
        self._again = again
        self._changed = changed
        self._report = report
        self._done = True

    def redo(self) -> None:
        if self._done:  # QUndoStack.push calls redo; the change is already in the store
            return
        try:
            self._again(self._project)
        except HarappError as exc:
            self._report(f"Cannot redo “{self.text()}”: {exc}")
            self.setObsolete(True)  # the stack drops it: its state no longer matches the store
            return
        self._done = True
        self._changed()
        self._report(f"Redone: {self.text()}")

    def undo(self) -> None:
        try:
            what = self._project.undo_class_op()
        except HarappError as exc:
            self._report(f"Cannot undo “{self.text()}”: {exc}")
            self.setObsolete(True)
            return
        self._done = False
        self._changed()
        self._report(f"Undone: {self.text()} ({what})")


class ClassEditor(QDialog):
    """The project's classes with their label counts, and the three changes a label schema needs."""

    def __init__(
        self,
        project: Project,
        undo_stack: QUndoStack,
        changed: Callable[[], None],
        report: Report,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Classes")
        self.project = project
        self.undo_stack = undo_stack
        self._changed = changed
        self._report = report
        self.list = QListWidget(self)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.setToolTip("Select one class to rename it, two or more to merge them (Ctrl+click)")
        self.add_button = QPushButton("&Add…", self)
        self.rename_button = QPushButton("&Rename…", self)
        self.merge_button = QPushButton("&Merge…", self)
        self.undo_button = QPushButton("&Undo last class change", self)
        self.add_button.setToolTip("A new class; its caption word is its name")
        self.rename_button.setToolTip("Rename the selected class; its labels keep it")
        self.merge_button.setToolTip("Move every label of the selected classes into one class (undo splits them again)")
        self.undo_button.setToolTip("Undo the latest add, rename or merge (as `harapp classes undo` does)")
        self.add_button.clicked.connect(self._ask_add)
        self.rename_button.clicked.connect(self._ask_rename)
        self.merge_button.clicked.connect(self._ask_merge)
        self.undo_button.clicked.connect(self.undo)
        undo_key = QAction(self)  # Ctrl+Z while the dialog is in front: the window's shortcut cannot reach here
        undo_key.setShortcut(QKeySequence.StandardKey.Undo)
        undo_key.triggered.connect(self.undo)
        self.addAction(undo_key)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        buttons = QVBoxLayout()
        for button in (self.add_button, self.rename_button, self.merge_button, self.undo_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        body = QHBoxLayout()
        body.addWidget(self.list, 1)
        body.addLayout(buttons)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Labels are data: classes can change at any time. Each change is saved at once."))
        layout.addLayout(body, 1)
        layout.addWidget(self.message)
        layout.addWidget(close)
        self.resize(460, 340)
        self.refresh()

    # -- state -----------------------------------------------------------------------------------------

    def refresh(self) -> None:
        counts = self.project.stats(check_files=False).per_class
        selected = set(self.selected())
        self.list.clear()
        for position, name in enumerate(self.project.class_names(), start=1):
            key = f"{position}  " if position <= 9 else ""
            item = QListWidgetItem(f"{key}{name}  ({counts.get(name, 0)} images)")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.list.addItem(item)
            item.setSelected(name in selected)
        self._update_buttons()

    def names(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def selected(self) -> list[str]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()]

    def select(self, names: Sequence[str]) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            item.setSelected(item.data(Qt.ItemDataRole.UserRole) in names)

    def _update_buttons(self) -> None:
        count = len(self.selected())
        self.rename_button.setEnabled(count == 1)
        self.merge_button.setEnabled(count >= 2)

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self._report(text)

    # -- changes ---------------------------------------------------------------------------------------

    def add_class(self, name: str) -> bool:
        return self._apply(f"Add class {name.strip()}", lambda p: p.add_class(name))

    def rename_class(self, old: str, new: str) -> bool:
        return self._apply(f"Rename class {old} to {new.strip()}", lambda p: p.rename_class(old, new))

    def merge_classes(self, names: Sequence[str], into: str) -> bool:
        names = list(names)
        return self._apply(f"Merge {', '.join(names)} into {into.strip()}", lambda p: p.merge_classes(names, into))

    def _apply(self, text: str, change: Callable[[Project], object]) -> bool:
        try:
            change(self.project)
        except HarappError as exc:
            self._say(f"Cannot {text[:1].lower()}{text[1:]}: {exc}")
            return False
        # The command outlives this dialog: it reports to the window, not to these widgets.
        self.undo_stack.push(ClassCommand(self.project, text, change, self._changed, self._report))
        self._after_change()
        self._say(f"{text} (Ctrl+Z undoes it)")
        return True

    def undo(self) -> None:
        """Undo the latest class change: through the undo stack when it is the stack's latest step, so the two
        stay in step; otherwise (a change from an earlier session or the command line) in the store directly."""
        index = self.undo_stack.index()
        latest = self.undo_stack.command(index - 1) if index > 0 else None
        if isinstance(latest, ClassCommand):
            self.undo_stack.undo()
            self.refresh()
            self.message.setText(f"Undone: {latest.text()}")
            return
        try:
            what = self.project.undo_class_op()
        except HarappError as exc:
            self._say(f"Nothing undone: {exc}")
            return
        # The label edits on the stack were made on top of the schema just changed: they can no longer be
        # undone safely from here (their history stays in the project; `harapp undo` still reaches them).
        self.undo_stack.clear()
        self._after_change()
        self._say(f"Undone: {what}")

    def _after_change(self) -> None:
        self._changed()
        self.refresh()

    # -- asking ----------------------------------------------------------------------------------------

    def _ask_add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
        if ok and name.strip():
            self.add_class(name)

    def _ask_rename(self) -> None:
        selected = self.selected()
        if len(selected) != 1:
            return
        name, ok = QInputDialog.getText(self, "Rename class", f"New name for {selected[0]}:", text=selected[0])
        if ok and name.strip():
            self.rename_class(selected[0], name)

    def _ask_merge(self) -> None:
        selected = self.selected()
        if len(selected) < 2:
            return
        name, ok = QInputDialog.getText(
            self,
            "Merge classes",
            f"Merge {', '.join(selected)} into (a new or existing class):",
            text="/".join(selected),
        )
        if ok and name.strip():
            self.merge_classes(selected, name)
