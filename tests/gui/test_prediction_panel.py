"""The prediction panel: drag-and-drop, paste and folders reach the bars; bad files get an inline error."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from harapp.gui.prediction_panel import NO_MODEL_TEXT, PredictionPanel
from tests.gui.training_data import make_photos, make_snapshot


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) trained model: two classes, 32 px CNN, trained for two epochs."""
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import train

    folder = tmp_path_factory.mktemp("model")
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", epochs=2, batch_size=4, image_size=32, device="cpu")
    result = train(config, make_snapshot(folder / "photos", per_class=5), folder / "tiny.pt")
    assert result.checkpoint_path is not None
    return result.checkpoint_path


@pytest.fixture
def panel(qtbot, checkpoint: Path) -> PredictionPanel:
    widget = PredictionPanel()
    widget.device = "cpu"
    widget.set_checkpoint(checkpoint)
    widget.resize(600, 500)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.shutdown()


def _drop(widget: PredictionPanel, mime: QMimeData) -> QDropEvent:
    """Send the enter + drop pair a real drag sends; returns the drop event to check its acceptance."""
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    actions = Qt.DropAction.CopyAction
    enter = QDragEnterEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the panel refused the drag"
    drop = QDropEvent(pos.toPointF(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop


def _url_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def _wait_done(qtbot, widget: PredictionPanel, count: int) -> None:
    qtbot.waitUntil(
        lambda: len(widget.rows) == count and all(r.error is not None or r.bars.values() for r in widget.rows),
        timeout=30_000,
    )


def test_dropped_photo_reaches_bars_that_sum_to_one(qtbot, panel: PredictionPanel, tmp_path: Path) -> None:
    (photo, _cls), *_ = make_photos(tmp_path / "drop", per_class=1, size=48)
    drop = _drop(panel, _url_mime(photo))
    assert drop.isAccepted()
    _wait_done(qtbot, panel, 1)
    row = panel.rows[0]
    values = row.bars.values()
    assert [name for name, _ in values] and {n for n, _ in values} == {"walking", "running"}
    assert sum(p for _, p in values) == pytest.approx(1.0, abs=1e-4)
    assert [p for _, p in values] == sorted((p for _, p in values), reverse=True)
    top_name, top_p = values[0]
    assert row.result_label.text().startswith(top_name)
    assert f"{100 * top_p:.1f}%" in row.result_label.text()
    assert row.thumb.pixmap() is not None and not row.thumb.pixmap().isNull()


def test_corrupt_and_non_image_files_get_inline_errors(qtbot, panel: PredictionPanel, tmp_path: Path) -> None:
    bad_jpeg = tmp_path / "broken.jpg"
    bad_jpeg.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    (good, _), *_ = make_photos(tmp_path / "ok", per_class=1)
    _drop(panel, _url_mime(bad_jpeg, notes, good))
    _wait_done(qtbot, panel, 3)
    broken_row, notes_row, good_row = panel.rows
    for row, name in ((broken_row, "broken.jpg"), (notes_row, "notes.txt")):
        assert row.error is not None and name in row.error
        assert name in row.result_label.text() and row.result_label.text().startswith("Cannot predict")
        assert row.bars.isHidden()
    assert good_row.error is None and sum(p for _, p in good_row.bars.values()) == pytest.approx(1.0, abs=1e-4)
    # The panel keeps working after the errors.
    _drop(panel, _url_mime(good))
    _wait_done(qtbot, panel, 4)
    assert panel.rows[3].error is None


def test_dropped_folder_is_searched_recursively_for_images(qtbot, panel: PredictionPanel, tmp_path: Path) -> None:
    root = tmp_path / "album"
    make_photos(root, per_class=1)
    make_photos(root / "nested" / "deeper", per_class=1, seed=3)
    (root / "readme.txt").write_text("not a photo", encoding="utf-8")
    _drop(panel, _url_mime(root))
    _wait_done(qtbot, panel, 4)
    assert all(r.error is None for r in panel.rows)
    assert sum("deeper" in r.source for r in panel.rows) == 2


def test_pasted_clipboard_image_is_classified(qtbot, panel: PredictionPanel) -> None:
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor(200, 40, 40))
    mime = QMimeData()
    mime.setImageData(image)
    clipboard = QApplication.clipboard()
    clipboard.setMimeData(mime)
    panel.setFocus()
    try:
        panel.paste()
    finally:
        # The offscreen clipboard still owning our QMimeData when QApplication is destroyed segfaults at exit.
        clipboard.clear()
    _wait_done(qtbot, panel, 1)
    assert panel.rows[0].error is None
    assert sum(p for _, p in panel.rows[0].bars.values()) == pytest.approx(1.0, abs=1e-4)


def test_without_a_model_the_panel_says_train_first(qtbot, tmp_path: Path) -> None:
    widget = PredictionPanel()
    qtbot.addWidget(widget)
    (photo, _), *_ = make_photos(tmp_path, per_class=1)
    _drop(widget, _url_mime(photo))
    assert widget.rows == []
    assert NO_MODEL_TEXT in widget.status_label.text()
    assert "Train a model first" in widget.status_label.text()


def test_unreadable_checkpoint_fails_each_row_with_the_reason(qtbot, tmp_path: Path) -> None:
    widget = PredictionPanel()
    qtbot.addWidget(widget)
    widget.set_checkpoint(tmp_path / "gone.pt")
    (photo, _), *_ = make_photos(tmp_path, per_class=1)
    _drop(widget, _url_mime(photo))
    qtbot.waitUntil(lambda: widget.rows and widget.rows[0].error is not None, timeout=10_000)
    assert "gone.pt" in widget.rows[0].error
    qtbot.waitUntil(lambda: not widget.jobs, timeout=10_000)


def test_project_active_model_is_used(qtbot, checkpoint: Path, tmp_path: Path) -> None:
    from harapp.core.store import Project

    with Project.create(tmp_path / "p.harapp") as project:
        trained_on = {"class_names": project.class_names()}
        model_id = project.register_model("tiny", "cnn-scratch", "scratch", checkpoint, 0, trained_on, {})
        widget = PredictionPanel()
        qtbot.addWidget(widget)
        widget.set_project(project)
        assert widget.checkpoint is None
        project.set_active_model(model_id)
        widget.refresh_model(model_id)
        assert widget.checkpoint == checkpoint
        assert f"v{model_id} · Small CNN from scratch" in widget.status_label.text()
        assert "retrain" not in widget.status_label.text()
        project.rename_class("sitting", "seated")
        widget.refresh_model(model_id)
        assert "seated" in widget.status_label.text() and "retrain" in widget.status_label.text()


def test_window_drop_open_dialog_and_ctrl_v_all_reach_the_panel(
    qtbot, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harapp.core.store import Project
    from harapp.gui import prediction_panel as module
    from harapp.gui.main_window import MainWindow

    with Project.create(tmp_path / "p.harapp") as project:
        project.set_active_model(project.register_model("tiny", "cnn-scratch", "scratch", checkpoint, 0, {}, {}))
    window = MainWindow(tmp_path / "p.harapp")
    qtbot.addWidget(window)
    window.show()
    panel = window.prediction_panel
    panel.device = "cpu"
    first, second = (photo for photo, _ in make_photos(tmp_path / "photos", per_class=1, size=48))

    assert _drop(window, _url_mime(first)).isAccepted()  # dropped anywhere on the window
    _wait_done(qtbot, panel, 1)
    monkeypatch.setattr(module.QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(second)], ""))
    qtbot.mouseClick(panel.open_button, Qt.MouseButton.LeftButton)
    _wait_done(qtbot, panel, 2)
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor(30, 160, 60))
    clipboard = QApplication.clipboard()
    clipboard.setImage(image)
    try:
        panel.setFocus()
        qtbot.keyClick(panel, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    finally:
        clipboard.clear()  # see test_pasted_clipboard_image_is_classified
    _wait_done(qtbot, panel, 3)
    assert [r.error for r in panel.rows] == [None, None, None]
    for row in panel.rows:
        assert sum(p for _, p in row.bars.values()) == pytest.approx(1.0, abs=1e-4)
    window.close()


def test_the_row_shows_the_person_used_and_a_chosen_person_is_predicted(
    qtbot,
    panel: PredictionPanel,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    (photo, _cls), *_ = make_photos(tmp_path / "in", per_class=1, size=48)
    panel.predict_paths([photo])
    _wait_done(qtbot, panel, 1)
    row = panel.rows[0]
    first = row.outcome
    assert first is not None and first.prediction is not None
    # Generated shapes have no person the pose model can find: the model saw the whole photo, and says so.
    assert first.prediction.person_box is None and first.prediction.person_source == "none"
    assert "no person found: whole photo only" in row.person_label.text()
    box = (2.0, 2.0, 20.0, 20.0)
    asked: list[tuple[list, object]] = []

    def answer(picker):  # type: ignore[no-untyped-def]
        asked.append((list(picker.canvas.boxes), picker.canvas.used))
        picker.canvas.choose(box)
        return picker.chosen_box()

    panel.picker_answer = answer
    with qtbot.waitSignal(panel.prediction_ready, timeout=30_000) as again:
        qtbot.mouseClick(row.thumb, Qt.MouseButton.LeftButton)
    assert asked == [([], None)]
    second = again.args[0]
    assert second.prediction.person_source == "user" and second.prediction.person_box == box
    assert row.outcome is second and "chosen person" in row.person_label.text()
    assert abs(sum(second.prediction.probabilities) - 1) < 1e-4
