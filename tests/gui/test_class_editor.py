"""Issue 10, item 8: Edit ▸ Classes… adds, renames and merges classes, with the command line's undo."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import Qt

from harapp.core.store import Project
from harapp.gui.class_editor import ClassEditor
from harapp.gui.main_window import MainWindow
from tests.gui.conftest import open_window
from tests.gui.curation_data import CurationProject


@pytest.fixture
def window(qtbot, curation: CurationProject) -> Iterator[MainWindow]:  # noqa: ANN001
    win = open_window(qtbot, curation, (1400, 900))
    yield win
    win.close()


def _classes(curation: CurationProject) -> list[str]:
    with Project.open(curation.path, readonly=True) as other:
        return other.class_names()


def test_the_menu_opens_the_editor_with_counts(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    action = window.actions_by_name["classes"]
    assert action.isEnabled() and action.shortcut().toString() == "Ctrl+Shift+C"
    action.trigger()
    editor = window.findChild(ClassEditor)
    assert editor is not None and editor.isVisible()
    assert editor.names() == ["walking", "running", "sitting", "standing"]
    assert editor.list.item(0).text() == "1  walking  (2 images)"
    editor.close()


def test_add_rename_merge_and_undo_each_with_ctrl_z(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    editor = window.edit_classes()
    assert editor is not None
    assert editor.add_class("jumping")
    assert _classes(curation)[-1] == "jumping"
    assert [b.text() for b in window.workspace.inspector.label_buttons()][4] == "5 jumping", "keys follow at once"
    assert editor.rename_class("jumping", "leaping") and _classes(curation)[-1] == "leaping"
    editor.select(["walking", "running"])
    assert editor.merge_button.isEnabled() and not editor.rename_button.isEnabled()
    assert editor.merge_classes(["walking", "running"], "walking/running")
    assert _classes(curation) == ["walking/running", "sitting", "standing", "leaping"]
    with Project.open(curation.path, readonly=True) as other:
        assert other.image(curation.ids[0]).label.class_name == "walking/running"
    filters = window.workspace.filters.class_box
    assert filters.findData("walking/running") >= 0 and filters.findData("walking") < 0, "the filters follow"
    assert "Merge walking, running into walking/running" in window.actions_by_name["undo"].text()

    editor.undo_button.click()  # the merge, as `harapp classes undo` would; the stack's latest step too
    assert _classes(curation) == ["walking", "running", "sitting", "standing", "leaping"]
    assert "Merge" in window.actions_by_name["redo"].text(), "undone through the undo stack: redo can repeat it"
    assert editor.names() == _classes(curation), "the dialog's list follows"
    with Project.open(curation.path, readonly=True) as other:
        assert other.image(curation.ids[0]).label.class_name == "walking"
        assert other.image(curation.ids[1]).label.class_name == "running"
    assert "Undone: Merge" in window.statusBar().currentMessage()
    editor.close()
    gallery = window.workspace.gallery
    gallery.setFocus()
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _classes(curation)[-1] == "jumping"
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert _classes(curation)[-1] == "leaping", "redo renames again"


def test_the_undo_button_reaches_a_change_made_on_the_command_line(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    with Project.open(curation.path) as other:  # e.g. `harapp classes P merge sitting standing --into still`
        other.merge_classes(["sitting", "standing"], "still")
    window.reload_classes()
    editor = window.edit_classes()
    assert "still" in editor.names()
    editor.undo_button.click()
    assert _classes(curation) == ["walking", "running", "sitting", "standing"]
    assert "sitting" in editor.names() and "split" in editor.message.text()


def test_a_refused_change_says_why(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    editor = window.edit_classes()
    assert not editor.add_class("sitting")
    assert "already exists" in editor.message.text() and "already exists" in window.statusBar().currentMessage()
    assert not editor.rename_class("walking", "running")
    assert "merge" in editor.message.text()
    assert _classes(curation) == ["walking", "running", "sitting", "standing"]
    assert window.workspace.labeling.undo_stack.count() == 0, "nothing changed: nothing to undo"
