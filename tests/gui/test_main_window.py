"""The main window: welcome view without a project, a project opened into the workspace, closing cleanly."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from harapp.core.paths import load_settings
from harapp.core.store import Project
from harapp.gui.main_window import MainWindow, window_settings
from harapp.gui.modes import Mode
from tests.gui.curation_data import CLASSES, CurationProject


def _window(qtbot, path: Path | None = None, size: tuple[int, int] | None = None) -> MainWindow:  # noqa: ANN001
    window = MainWindow(path)
    qtbot.addWidget(window)
    if size is not None:  # a first start fits the (small, offscreen) screen; some tests need room
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_welcome_view_without_project(qtbot) -> None:  # noqa: ANN001
    window = _window(qtbot)
    assert window.stack.currentWidget() is window.welcome
    assert window.windowTitle() == "harapp"
    assert set(window.welcome.buttons) == {"open", "coco", "folder", "demo"}
    assert all(b.toolTip() for b in window.welcome.buttons.values())
    for name in ("close", "mode_train", "train", "retrain", "cancel_training", "classes"):
        assert not window.actions_by_name[name].isEnabled(), f"{name} needs a project"
    assert window.modes.isHidden()  # the modes need a project
    window.close()


def test_opens_project_into_workspace(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    assert window.stack.currentWidget() is window.modes and window.modes.mode() == Mode.LABEL
    assert window.modes.currentWidget() is window.workspace
    assert window.windowTitle().startswith("curation.harapp")
    assert window.workspace.model.rowCount() == 12
    # The first image is selected and shown in the inspector, with its two person boxes.
    qtbot.waitUntil(lambda: window.workspace.inspector.image_id() == curation.ids[0])
    assert len(window.workspace.inspector.canvas.persons()) == 2
    qtbot.waitUntil(window.workspace.inspector.canvas.has_image, timeout=10_000)
    assert [b.text() for b in window.workspace.inspector.label_buttons()][:4] == [
        "1 walking",
        "2 running",
        "3 sitting",
        "4 standing",
    ]
    assert load_settings().recent_projects[0] == str(curation.path.resolve())
    window.close()
    assert window.project is None


def test_menus_and_recent_projects(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    titles = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert titles == ["File", "Edit", "View", "Train", "Help"]
    window.close_project()
    assert window.stack.currentWidget() is window.welcome
    recent = window.welcome.recent
    assert recent.count() == 1 and "curation" in recent.item(0).text()
    window.welcome.recent_requested.emit(curation.path)
    assert window.project is not None and window.project.path == curation.path
    window.close()


def test_bad_project_file_shows_the_cause(qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    bad = tmp_path / "notes.harapp"
    bad.write_text("hello")
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: shown.append(text))
    window = _window(qtbot)
    assert window.open_project(bad) is False
    assert shown and "notes.harapp" in shown[0] and "not a harapp project" in shown[0]
    assert window.stack.currentWidget() is window.welcome
    window.close()


def test_geometry_is_restored(qtbot) -> None:  # noqa: ANN001
    window = _window(qtbot)
    wanted = (window.minimumSizeHint().width() + 37, window.minimumSizeHint().height() + 23)
    window.resize(*wanted)
    window.close()
    assert window_settings().value("geometry") is not None
    again = _window(qtbot)
    # The offscreen screen is narrower than the window's minimum width, so only the height can be compared.
    assert again.height() == wanted[1]
    again.close()


def test_modes_switch_by_menu_and_keep_the_selection(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    window.workspace.select_image(curation.ids[3])
    window.actions_by_name["mode_train"].trigger()
    assert window.modes.currentWidget() is window.training_panel and window.training_panel.isVisible()
    assert not window.workspace.isVisible(), "one mode at a time: Train has the whole window"
    window.actions_by_name["mode_predict"].trigger()
    assert window.modes.currentWidget() is window.prediction_panel
    window.actions_by_name["mode_label"].trigger()
    assert window.workspace.gallery.current_image_id() == curation.ids[3]
    window.close()


def test_label_splitter_is_restored(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    window.resize(1300, 700)
    window.workspace.splitter.setSizes([200, 500, 560])
    wanted = window.workspace.splitter.sizes()
    window.close()
    again = _window(qtbot, curation.path)
    again.resize(1300, 700)
    assert again.workspace.splitter.sizes() == wanted
    again.close()


def test_confusion_cell_filters_gallery(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    window.show_confusion_cell("running", "sitting", [curation.ids[1]])
    assert window.workspace.proxy.visible_image_ids() == [curation.ids[1]]
    assert "running" in window.workspace.filters.cell_note.text()
    window.workspace.filters.cell_clear.click()
    assert window.workspace.proxy.rowCount() == 12
    window.close()


def test_label_change_is_saved_without_save_button(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    window = _window(qtbot, curation.path)
    qtbot.waitUntil(lambda: window.workspace.inspector.image_id() == curation.ids[0])
    window.workspace.inspector.label_buttons()[3].click()  # "4 standing"
    with Project.open(curation.path, readonly=True) as other:  # another connection sees it at once
        assert other.image(curation.ids[0]).label.class_name == "standing"
    assert window.workspace.inspector.image_id() == curation.ids[1]  # moved on to the next image
    window.close()


def _fake_event_loop(seen: dict):  # noqa: ANN202
    """Stands in for app.exec(): a real exec()/quit() would leave Qt closing for every later test."""

    def run(_app) -> int:  # noqa: ANN001
        from PySide6.QtWidgets import QApplication

        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, MainWindow) and widget.isVisible():
                seen["title"] = widget.windowTitle()
                seen["rows"] = widget.workspace.model.rowCount()
                widget.close()
        return 0

    return run


def test_run_gui_opens_a_project(qtbot, curation: CurationProject, monkeypatch) -> None:  # noqa: ANN001
    from harapp.gui import app as gui_app

    seen: dict = {}
    monkeypatch.setattr(gui_app, "_event_loop", _fake_event_loop(seen))
    assert gui_app.run_gui(curation.path, demo=False) == 0
    assert seen["title"].startswith("curation.harapp") and seen["rows"] == 12


def test_run_gui_demo_opens_the_existing_demo(qtbot, monkeypatch) -> None:  # noqa: ANN001
    from harapp.core.demo.project import create_demo_project
    from harapp.core.paths import demo_project_path
    from harapp.gui import app as gui_app

    create_demo_project(demo_project_path().parent, n_images=6)
    seen: dict = {}
    monkeypatch.setattr(gui_app, "_event_loop", _fake_event_loop(seen))
    assert gui_app.run_gui(None, demo=True) == 0
    assert seen["title"].startswith("demo.harapp") and seen["rows"] == 6


def test_gallery_paints_thumbnails_and_badges(qtbot, curation: CurationProject) -> None:  # noqa: ANN001
    from PySide6.QtGui import QColor

    from harapp.gui.style import DISAGREE_COLOUR, PREDICTION_COLOUR, class_colour

    window = _window(qtbot, curation.path, (1400, 900))
    workspace = window.workspace
    loader = workspace.thumbnails
    qtbot.waitUntil(
        lambda: loader.has_thumbnail(curation.ids[0]) and loader.error(curation.ids[11]) is not None, timeout=10_000
    )
    assert "not found" in loader.error(curation.ids[11])
    gallery = workspace.gallery
    image = gallery.viewport().grab().toImage()

    def colours_in(image_id: int) -> set[tuple[int, int, int]]:
        rect = gallery.visualRect(workspace.proxy.index(workspace.proxy.proxy_row_of(image_id), 0))
        found = set()
        for x in range(max(0, rect.left()), min(image.width(), rect.right()), 2):
            for y in range(max(0, rect.top()), min(image.height(), rect.bottom()), 2):
                c = image.pixelColor(x, y)
                found.add((c.red(), c.green(), c.blue()))
        return found

    def has(colours: set, colour: QColor) -> bool:
        return (colour.red(), colour.green(), colour.blue()) in colours

    names = list(CLASSES)
    second = colours_in(curation.ids[1])  # running label, the model says sitting
    assert has(second, class_colour("running", names))
    assert has(second, DISAGREE_COLOUR)
    assert has(colours_in(curation.ids[0]), class_colour("walking", names))
    assert not has(colours_in(curation.ids[0]), DISAGREE_COLOUR)
    assert not has(colours_in(curation.ids[0]), PREDICTION_COLOUR)  # agreeing predictions only on request
    window.actions_by_name["predictions"].trigger()  # View > Show model predictions
    image = gallery.viewport().grab().toImage()
    assert has(colours_in(curation.ids[0]), PREDICTION_COLOUR)  # image 0: the model agrees (walking)
    assert has(colours_in(curation.ids[1]), DISAGREE_COLOUR)
    assert not has(colours_in(curation.ids[2]), PREDICTION_COLOUR)  # no prediction for image 2
    window.close()


def test_event_loop_runs_the_application() -> None:
    from harapp.gui import app as gui_app

    class FakeApp:
        def exec(self) -> int:
            return 3

    assert gui_app._event_loop(FakeApp()) == 3  # type: ignore[arg-type]
