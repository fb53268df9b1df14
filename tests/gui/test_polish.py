"""Issue 10, item 9: the smaller things a new user hit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QFontMetrics, QImage
from PySide6.QtWidgets import QLabel

from harapp.core.paths import remember_project
from harapp.core.store import Project
from harapp.core.types import Label, Person
from harapp.gui.image_canvas import ImageCanvas
from harapp.gui.main_window import MainWindow
from harapp.gui.modes import Mode
from tests.gui.conftest import open_window
from tests.gui.curation_data import CurationProject, make_curation_project


@pytest.fixture
def window(qtbot, curation: CurationProject) -> Iterator[MainWindow]:  # noqa: ANN001
    win = open_window(qtbot, curation, (1366, 740))
    yield win
    win.close()


def _one_line(widget: QLabel) -> bool:
    return not widget.wordWrap() and widget.sizeHint().height() <= QFontMetrics(widget.font()).height() + 8


def test_undo_says_what_it_undid_and_shows_that_photo(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    gallery = window.workspace.gallery
    gallery.setFocus()
    qtbot.keyClick(gallery, Qt.Key.Key_2)  # img000.jpg: walking -> running; the gallery moves on
    assert window.statusBar().currentMessage() == "Saved: Label img000.jpg as running"
    qtbot.keyClick(gallery, Qt.Key.Key_D)
    assert gallery.current_image_id() == curation.ids[2]
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.statusBar().currentMessage() == "Undone: Label img000.jpg as running"
    assert gallery.current_image_id() == curation.ids[0], "the selection returns to the photo that changed"
    qtbot.keyClick(gallery, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.statusBar().currentMessage() == "Redone: Label img000.jpg as running"


def test_the_edit_menu_names_files_not_ids(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    labeling = window.workspace.labeling
    labeling.label_images([curation.ids[5]], "sitting")
    assert window.actions_by_name["undo"].text() == "&Undo Label img005.jpg as sitting"
    labeling.label_person(curation.ids[0], curation.persons[1], "standing")
    assert window.actions_by_name["undo"].text() == "&Undo Label person 2 in img000.jpg as standing"
    labeling.label_images([curation.ids[2], curation.ids[3]], None)
    assert window.actions_by_name["undo"].text() == "&Undo Clear label of 2 images"


def test_retrain_and_cancel_need_a_project(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.close_project()
    for name in ("train", "retrain", "cancel_training"):
        assert not window.actions_by_name[name].isEnabled(), name
    panel = window.training_panel
    assert not (panel.start_button.isEnabled() or panel.retrain_button.isEnabled() or panel.cancel_button.isEnabled())


def test_models_table_columns_are_readable(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    with Project.open(curation.path) as other:
        other.register_model(
            "efficientnet-lite0 linear-probe 2025-01-31 12:34", "efficientnet-lite0", "linear-probe",
            curation.path.parent / "x.pt", 7, {"accuracy": 0.7123, "macro_f1": 0.6912}, {},
        )  # fmt: skip
    window.training_panel.refresh_models()
    window.set_mode(Mode.TRAIN)
    panel = window.training_panel
    panel.tabs.setCurrentWidget(panel.models_table)
    table = panel.models_table.table
    qtbot.waitUntil(table.isVisible)
    metrics = QFontMetrics(table.font())
    assert table.item(0, 2).text() == "EfficientNet-Lite0" and table.item(0, 3).text() == "linear probe"
    for row in range(table.rowCount()):
        for col in range(table.columnCount()):
            text = table.item(row, col).text()
            assert table.columnWidth(col) >= metrics.horizontalAdvance(text), f"column {col} cuts {text!r}"
    assert table.horizontalScrollBar().maximum() == 0, "every column fits the tab at 1366 px"


def test_a_confusion_filter_takes_one_line(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    window.show_confusion_cell("standing", "walking", list(curation.ids[:3]))
    note = window.workspace.filters.cell_note
    qtbot.waitUntil(note.isVisible)
    assert _one_line(note)
    assert note.text() == "Cell: standing → walking (3)"
    assert "labelled standing, predicted walking: 3 images" in note.toolTip()
    assert window.workspace.proxy.visible_image_ids() == list(curation.ids[:3])


def test_the_gallery_keeps_its_columns_when_filtered(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    big = make_curation_project(tmp_path / "big", n_images=60)
    with Project.open(big.path) as project:  # ten sitting photos: more than a row, less than a screen
        project.set_labels([(i, "sitting") for i in big.ids[12:21]], source="human")
    win = MainWindow(big.path)
    qtbot.addWidget(win)
    win.resize(1366, 740)
    win.show()
    gallery = win.workspace.gallery
    qtbot.waitUntil(lambda: gallery.column_count() > 1)
    assert gallery.verticalScrollBar().isVisible(), "60 photos need a scroll bar"
    before = gallery.column_count()
    box = win.workspace.filters.class_box
    box.setCurrentIndex(box.findData("sitting"))  # ten photos: no scroll bar any more
    qtbot.waitUntil(lambda: not gallery.verticalScrollBar().isVisible())
    qtbot.wait(50)  # the view lays its items out after the event loop turns
    assert gallery.column_count() == before
    win.close()


def test_person_captions_never_overlap_on_small_boxes(qtbot) -> None:  # noqa: ANN001
    canvas = ImageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(640, 480)
    # A school photo: a row of small, touching boxes (children), one selected.
    persons = [Person(100 + i, 1, None, (40 + 36 * i, 200, 34, 60), None, 34 * 60) for i in range(12)]
    persons.append(Person(200, 1, None, (44, 210, 30, 40), None, 1200))  # one box inside another
    labels = {p.id: Label(1, p.id, "sitting", "human") for p in persons[::2]}
    canvas.set_content(QSize(640, 480), persons, labels, ["walking", "running", "sitting", "standing"])
    canvas.select_person(104)
    image = QImage(640, 480, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.darkGray)
    canvas.set_image(image)
    canvas.grab()  # paints, which places the captions
    tags = canvas.tag_rects()
    assert set(tags) == {p.id for p in persons}
    rects = [rect for rect, _ in tags.values()]
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            assert not a.intersects(b), "two person captions overlap"
    assert all(QRectF(canvas.rect()).contains(r) for r in rects)
    assert tags[104][1] == "5 sitting", "the selected person keeps its full caption"


def test_the_predict_page_fits_without_a_sideways_scroll(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    with Project.open(curation.path) as other:
        long_name = "efficientnet-lite0 linear-probe 2025-01-31 12:34 with a very long name indeed"
        model_id = other.register_model(long_name, "efficientnet-lite0", "linear-probe", curation.path, 1, {}, {})
        other.set_active_model(model_id)
    window.prediction_panel.refresh_model()
    window.resize(1280, 680)
    window.set_mode(Mode.PREDICT)
    panel = window.prediction_panel
    panel.predict_paths([curation.path.parent / "images" / "img001.jpg"])
    qtbot.waitUntil(lambda: bool(panel.rows) and panel.rows[0].error is not None, timeout=30_000)
    scroll = panel.rows_scroll
    assert scroll.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    assert panel.rows[0].width() <= scroll.viewport().width(), "the rows fit the page"
    assert _one_line(panel.status_label), "the model's name stays on one line"
    assert "v2 · EfficientNet-Lite0 linear probe" in panel.status_label.text()
    panel.clear()


def test_recent_projects_show_count_date_and_thumbnail(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    remember_project(curation.path)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    recent = win.welcome.recent
    qtbot.waitUntil(lambda: "12 images" in recent.item(0).text(), timeout=10_000)
    text = recent.item(0).text()
    assert text.startswith("curation  —  12 images · changed 20") and str(curation.path.parent) in text
    qtbot.waitUntil(lambda: not recent.item(0).icon().isNull(), timeout=10_000)
    win.close()


def test_the_image_view_shows_the_models_opinion(qtbot, window: MainWindow, curation) -> None:  # noqa: ANN001
    opinion = window.workspace.inspector.opinion
    assert "walking 90%" in opinion.text() and "disagrees" not in opinion.text()
    window.workspace.select_image(curation.ids[1])  # labelled running; the model says sitting
    assert "sitting 60%" in opinion.text() and "disagrees with the label" in opinion.text()
    window.workspace.select_image(curation.ids[2])
    assert "no prediction" in opinion.text()
