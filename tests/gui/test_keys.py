"""Issue 10, item 4 and the ? overlay: labelling keys wherever the focus is, Ctrl+V window-wide, keys that cannot
act say why, and every shortcut listed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from harapp.core.store import Project
from harapp.gui.main_window import MainWindow
from harapp.gui.modes import Mode
from tests.gui.conftest import open_window
from tests.gui.curation_data import CurationProject


@pytest.fixture
def window(qtbot, curation: CurationProject) -> Iterator[MainWindow]:  # noqa: ANN001
    win = open_window(qtbot, curation, (1400, 900))
    yield win
    win.close()


def _stored(curation: CurationProject, index: int) -> str | None:
    with Project.open(curation.path, readonly=True) as other:
        label = other.image(curation.ids[index]).label
    return label.class_name if label else None


def _status(window: MainWindow) -> str:
    return window.statusBar().currentMessage()


def test_keys_label_after_a_click_on_a_filter_or_a_button(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    filters = window.workspace.filters
    filters.uncertain.setFocus()  # the last click went to a check box in the filter column
    assert QApplication.focusWidget() is filters.uncertain
    qtbot.keyClick(filters.uncertain, Qt.Key.Key_3)
    assert _stored(curation, 0) == "sitting", "3 labels the photo although a check box has the focus"
    assert window.workspace.gallery.current_image_id() == curation.ids[1]
    filters.sort_box.setFocus()  # a combo box would take "4" as a search in its items
    qtbot.keyClick(filters.sort_box, Qt.Key.Key_4)
    assert _stored(curation, 1) == "standing" and filters.sort_box.currentIndex() == 0
    qtbot.keyClick(filters.sort_box, Qt.Key.Key_D)  # moving works from there too
    assert window.workspace.gallery.current_image_id() == curation.ids[3]
    filters.uncertain.setFocus()
    qtbot.keyClick(filters.uncertain, Qt.Key.Key_Right)  # arrows reach the gallery from a check box
    assert window.workspace.gallery.current_image_id() == curation.ids[4]


def test_a_text_field_keeps_its_keys(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    search = window.workspace.filters.search
    search.setFocus()
    qtbot.keyClicks(search, "3 d")
    assert search.text() == "3 d" and _stored(curation, 0) == "walking"


def test_clicking_the_photo_or_a_person_takes_the_keys(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    canvas = window.workspace.inspector.canvas
    window.workspace.filters.source_box.setFocus()
    box = canvas._box_rect(canvas.persons()[0])
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=box.center().toPoint())
    assert canvas.hasFocus(), "a click on a person box takes the focus"
    qtbot.keyClick(canvas, Qt.Key.Key_3)
    with Project.open(curation.path, readonly=True) as other:
        assert other.person_labels(curation.ids[0])[curation.persons[0]].class_name == "sitting"
    assert "Person 1" not in window.workspace.inspector.current_label.text() or "sitting" in (
        window.workspace.inspector.current_label.text()
    )
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=canvas.rect().topLeft() + canvas.rect().center() / 8)
    qtbot.keyClick(canvas, Qt.Key.Key_2)  # outside the boxes: the whole image
    assert _stored(curation, 0) == "running"


def test_a_key_that_cannot_act_says_why(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    gallery = window.workspace.gallery
    gallery.setFocus()
    qtbot.keyClick(gallery, Qt.Key.Key_7)
    assert "No class has the key 7" in _status(window) and "4 standing" in _status(window)
    window.workspace.filters.search.setText("no such words anywhere")
    window.workspace.filters.flush_search()
    gallery.setFocus()
    qtbot.keyClick(gallery, Qt.Key.Key_1)
    assert "nothing to label" in _status(window)
    window.workspace.filters.reset()
    window.set_mode(Mode.TRAIN)
    button = window.training_panel.start_button
    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_2)
    assert "Label view" in _status(window) and "Ctrl+1" in _status(window)
    assert _stored(curation, 0) == "walking", "nothing was labelled from the Train mode"


def test_ctrl_v_pastes_a_photo_from_anywhere(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(curation.path.parent / "images" / "img002.jpg"))])
    clipboard = QApplication.clipboard()
    clipboard.setMimeData(mime)
    try:
        gallery = window.workspace.gallery
        gallery.setFocus()
        qtbot.keyClick(gallery, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert window.modes.mode() == Mode.PREDICT and len(window.prediction_panel.rows) == 1
        window.set_mode(Mode.TRAIN)
        spin = window.training_panel.batch_spin
        spin.setFocus()
        qtbot.keyClick(window.training_panel.start_button, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert len(window.prediction_panel.rows) == 2, "Ctrl+V works from the Train mode too"
        window.set_mode(Mode.LABEL)
        search = window.workspace.filters.search
        search.setFocus()
        clipboard.setText("walking")
        qtbot.keyClick(search, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert search.text() == "walking", "in a text field Ctrl+V pastes text"
        assert len(window.prediction_panel.rows) == 2
    finally:
        clipboard.clear()


def test_the_overlay_lists_every_shortcut(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.show_shortcuts()
    text = window.overlay.rows_text()
    for action in window.actions():
        for key in action.shortcuts():
            native = key.toString(QKeySequence.SequenceFormat.NativeText)
            assert native in text, f"{native} ({action.text()}) is missing from the ? overlay"
    for key in ("Ctrl+V", "Ctrl+Shift+T", "Ctrl+P", "Ctrl++", "Ctrl+-", "F1", "Ctrl+1", "label as walking", "A / D"):
        assert key in text, key
    window.overlay.hide()
