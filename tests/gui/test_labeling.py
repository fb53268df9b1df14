"""Keyboard labelling writes to the store at once; undo/redo go through the store's history; bulk relabel."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt

from harapp.core.store import Project
from harapp.gui.gallery_model import UNLABELLED
from harapp.gui.labeling import class_keys
from harapp.gui.main_window import MainWindow
from harapp.gui.workspace import Workspace
from tests.gui.curation_data import CurationProject


def _stored(curation: CurationProject, index: int) -> tuple[str | None, str | None]:
    """The label as another connection sees it: proof it was committed, not held in memory."""
    with Project.open(curation.path, readonly=True) as other:
        label = other.image(curation.ids[index]).label
    return (label.class_name, label.source) if label else (None, None)


def test_class_keys_numbers_and_mnemonics() -> None:
    keys = class_keys(["walking", "running", "sitting", "standing"])
    assert [(k.number, k.letter) for k in keys] == [(1, "w"), (2, "r"), (3, "s"), (4, "t")]
    # Letters used for moving (A, D) or keypoints (K) are never a class key.
    assert [k.letter for k in class_keys(["apple", "dog", "kite"])] == ["p", "o", "i"]
    assert class_keys([f"c{i}" for i in range(11)])[9].number is None


def test_number_key_labels_saves_and_advances(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    assert workspace.gallery.current_image_id() == curation.ids[0]
    class_box = workspace.filters.class_box
    assert class_box.itemText(class_box.findData("sitting")) == "sitting (1)"
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_3)
    assert class_box.itemText(class_box.findData("sitting")) == "sitting (2)"
    assert class_box.itemText(class_box.findData("walking")) == "walking (1)"
    assert _stored(curation, 0) == ("sitting", "human")
    assert workspace.gallery.current_image_id() == curation.ids[1]
    assert workspace.model.image_row(curation.ids[0]).label == "sitting"
    qtbot.keyClick(workspace.gallery, "t")  # mnemonic of "standing" (s is taken by sitting)
    assert _stored(curation, 1) == ("standing", "human")
    assert workspace.gallery.current_image_id() == curation.ids[2]


def test_move_and_clear_keys(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_D)
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_D)
    assert workspace.gallery.current_image_id() == curation.ids[2]
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_A)
    assert workspace.gallery.current_image_id() == curation.ids[1]
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_Delete)
    assert _stored(curation, 1) == (None, None)


def test_undo_redo_through_the_store(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    stack = workspace.labeling.undo_stack
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_2)  # image 0: walking (caption) -> running (human)
    assert _stored(curation, 0) == ("running", "human")
    stack.undo()
    assert _stored(curation, 0) == ("walking", "caption")  # the caption label and its source come back
    assert workspace.model.image_row(curation.ids[0]).source == "caption"
    stack.redo()
    assert _stored(curation, 0) == ("running", "human")
    assert workspace.model.image_row(curation.ids[0]).label == "running"
    with Project.open(curation.path, readonly=True) as other:
        reasons = [e.reason for e in other.history(curation.ids[0], limit=3)]
    assert reasons == ["redo", "undo", "edit"]


def test_same_label_again_adds_no_undo_step(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    workspace.select_image(curation.ids[4])  # already walking, set by a person
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_1)
    assert workspace.labeling.undo_stack.count() == 0


def test_bulk_relabel_is_one_undo_step(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    gallery = workspace.gallery
    selection = gallery.selectionModel()
    for index in (6, 7, 8):
        row = workspace.proxy.proxy_row_of(curation.ids[index])
        selection.select(workspace.proxy.index(row, 0), QItemSelectionModel.SelectionFlag.Select)
    assert len(gallery.selected_image_ids()) >= 3
    selected = gallery.selected_image_ids()
    qtbot.keyClick(gallery, Qt.Key.Key_4)
    with Project.open(curation.path, readonly=True) as other:
        assert {other.image(i).label.class_name for i in selected} == {"standing"}
    assert workspace.labeling.undo_stack.count() == 1
    workspace.labeling.undo_stack.undo()
    for index in (6, 7, 8):
        assert _stored(curation, index) == (None, None)
    assert all(workspace.model.image_row(curation.ids[i]).label is None for i in (6, 7, 8))


def test_context_menu_relabel_signal(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    workspace.gallery.selectAll()
    workspace.gallery.relabel_requested.emit("running")
    with Project.open(curation.path, readonly=True) as other:
        assert {other.image(i).label.class_name for i in curation.ids} == {"running"}


def test_labelling_under_a_filter_goes_to_the_next_image(
    qtbot, workspace: Workspace, curation: CurationProject
) -> None:  # noqa: ANN001
    workspace.filters.class_box.setCurrentIndex(workspace.filters.class_box.findData(UNLABELLED))
    workspace.gallery.select_row(0)
    assert workspace.gallery.current_image_id() == curation.ids[6]
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_1)  # the image leaves the filter...
    assert curation.ids[6] not in workspace.proxy.visible_image_ids()
    assert workspace.gallery.current_image_id() == curation.ids[7]  # ...and the next one, not the one after
    assert workspace.inspector.image_id() == curation.ids[7]


def test_person_box_click_labels_that_person(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    canvas = workspace.inspector.canvas
    canvas.resize(640, 480)
    first, second = curation.persons
    box = canvas._box_rect(canvas.persons()[0])
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=box.center().toPoint())
    assert workspace.labeling.target_person == first
    assert "person 1" in workspace.inspector.target.text()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_3)
    with Project.open(curation.path, readonly=True) as other:
        assert other.person_labels(curation.ids[0])[first].class_name == "sitting"
        assert other.image(curation.ids[0]).label.class_name == "walking"  # the image label is untouched
    assert workspace.labeling.target_person == second  # on to the next person in the same image
    assert workspace.gallery.current_image_id() == curation.ids[0]
    workspace.labeling.undo_stack.undo()
    with Project.open(curation.path, readonly=True) as other:
        assert first not in other.person_labels(curation.ids[0])


def test_ctrl_z_in_the_main_window(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = MainWindow(curation.path)
    qtbot.addWidget(window)
    with qtbot.waitActive(window):  # shortcuts only reach an active window
        window.show()
        window.activateWindow()
    gallery = window.workspace.gallery
    gallery.setFocus()
    qtbot.keyClick(gallery, Qt.Key.Key_2)
    assert _stored(curation, 0) == ("running", "human")
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _stored(curation, 0) == ("walking", "caption")
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert _stored(curation, 0) == ("running", "human")
    qtbot.keyClick(gallery, Qt.Key.Key_Question, Qt.KeyboardModifier.ShiftModifier)
    assert window.overlay.isVisible() and "label as walking" in window.overlay.rows_text()
    window.overlay.hide()
    # "?" works wherever the focus is, except in a text field, where it is text.
    button = window.prediction_panel.open_button
    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_Question, Qt.KeyboardModifier.ShiftModifier)
    assert window.overlay.isVisible()
    window.overlay.hide()
    search = window.workspace.filters.search
    search.setFocus()
    qtbot.keyClicks(search, "why?")
    assert search.text() == "why?" and not window.overlay.isVisible()
    window.close()


def test_image_view_shows_captions_history_and_toggles_keypoints(
    qtbot, workspace: Workspace, curation: CurationProject
) -> None:  # noqa: ANN001
    inspector = workspace.inspector
    qtbot.waitUntil(lambda: inspector.image_id() == curation.ids[0])
    captions = inspector.captions.text()
    assert "Activity votes: walking 2" in captions and "a person walking in the park number 0" in captions
    assert inspector.history.count() == 1 and "– → walking" in inspector.history.item(0).text()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_2)  # labels image 0 running, moves on
    workspace.gallery.select_row(0)
    qtbot.waitUntil(lambda: inspector.image_id() == curation.ids[0])
    assert inspector.history.count() == 2 and "walking → running" in inspector.history.item(0).text()
    assert inspector.notes.tabText(1) == "History (2)"

    qtbot.waitUntil(inspector.canvas.has_image, timeout=10_000)
    with_keypoints = inspector.canvas.grab().toImage()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_K)
    assert inspector.canvas.show_keypoints is False
    assert inspector.canvas.grab().toImage() != with_keypoints  # image 0's first person has keypoints
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_K)
    assert inspector.canvas.show_keypoints is True
