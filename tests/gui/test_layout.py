"""Issue 10, item 1 and drops: the window fits 1280x720, each mode owns the window, drops work anywhere."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QMimeData, QPoint, QRect, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from harapp.gui.main_window import MainWindow
from harapp.gui.modes import Mode
from tests.gui.curation_data import CurationProject

SMALL = (1280, 720)
TITLE_BAR = 40
"""A window manager's title bar and panel take about this much of a 720-pixel-high screen."""


@pytest.fixture
def window(qtbot, curation: CurationProject) -> MainWindow:  # noqa: ANN001
    win = MainWindow(curation.path)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.close()


def _inside(window: QWidget, widget: QWidget) -> bool:
    """The widget is shown and lies wholly inside the window's visible rectangle."""
    if not widget.isVisible():
        return False
    top_left = widget.mapTo(window, QPoint(0, 0))
    return window.rect().contains(QRect(top_left, widget.size()))


def test_minimum_size_fits_1280x720(window: MainWindow) -> None:
    for mode in Mode:
        window.set_mode(mode)
        hint = window.minimumSizeHint()
        assert hint.width() <= SMALL[0], f"{mode.name}: needs {hint.width()} px width"
        assert hint.height() <= SMALL[1] - TITLE_BAR, f"{mode.name}: needs {hint.height()} px height"
    window.close_project()
    hint = window.minimumSizeHint()
    assert hint.width() <= SMALL[0] and hint.height() <= SMALL[1] - TITLE_BAR, "the welcome view fits too"


def test_every_control_is_on_screen_at_1280x680(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.resize(SMALL[0], SMALL[1] - TITLE_BAR)
    window.set_mode(Mode.TRAIN)
    panel = window.training_panel
    for control in (panel.start_button, panel.cancel_button, panel.retrain_button, panel.progress_bar):
        assert _inside(window, control), f"{control.text() if hasattr(control, 'text') else control} is cut off"
    assert _inside(window, panel.chart) and _inside(window, panel.confusion)
    assert panel.chart.height() >= 150 and panel.confusion.height() >= 150
    window.set_mode(Mode.PREDICT)
    predict = window.prediction_panel
    assert _inside(window, predict.clear_button) and _inside(window, predict.open_button)
    window.set_mode(Mode.LABEL)
    inspector = window.workspace.inspector
    assert _inside(window, inspector.label_buttons()[-1]), "the label buttons fit under the photo"
    assert inspector.canvas.height() >= 250, "the photo gets most of the height while labelling"
    assert window.statusBar().isVisible() and _inside(window, window.statusBar())


def test_label_mode_gives_the_photos_the_window(qtbot, window: MainWindow) -> None:  # noqa: ANN001
    window.resize(1600, 1000)
    qtbot.wait(10)
    gallery, canvas = window.workspace.gallery, window.workspace.inspector.canvas
    assert not window.training_panel.isVisible() and not window.prediction_panel.isVisible()
    assert gallery.height() > 0.75 * window.height(), "no dock takes the bottom half any more"
    assert canvas.width() >= 450 and canvas.height() >= 450


def _drag(widget: QWidget, mime: QMimeData) -> QDragEnterEvent:
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    event = QDragEnterEvent(
        pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(widget, event)
    return event


def test_a_photo_dropped_anywhere_is_predicted_with_a_visible_highlight(
    qtbot, window: MainWindow, curation: CurationProject
) -> None:  # noqa: ANN001
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(curation.path.parent / "images" / "img001.jpg"))])
    assert window.modes.mode() == Mode.LABEL
    event = _drag(window, mime)
    assert event.isAccepted()
    assert window.drop_overlay.isVisible() and "predict" in window.drop_overlay.text()
    assert window.drop_overlay.geometry() == window.stack.rect(), "the highlight covers the whole work area"
    QApplication.sendEvent(window, QDragLeaveEvent())
    assert not window.drop_overlay.isVisible(), "leaving the window takes the highlight away"
    _drag(window, mime)
    pos = QPoint(window.width() // 2, window.height() // 2).toPointF()
    QApplication.sendEvent(
        window,
        QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier),
    )
    assert not window.drop_overlay.isVisible()
    assert window.modes.mode() == Mode.PREDICT, "the prediction shows where the person can read it"
    assert len(window.prediction_panel.rows) == 1
    # The Predict page itself takes no drop of its own: the window's one behaviour (and highlight) applies there.
    assert not window.prediction_panel.acceptDrops()


def test_a_project_file_drop_says_it_opens(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(curation.path))])
    assert _drag(win, mime).isAccepted()
    assert "open the project curation.harapp" in win.drop_overlay.text()
    text = QMimeData()
    text.setText("just words")
    win.drop_overlay.hide()
    assert not _drag(win, text).isAccepted() and not win.drop_overlay.isVisible()
    win.close()
