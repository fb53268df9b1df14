"""File ▸ Locate folder… and the status-bar note about missing photos (issue 11, bad input 5); the app
starting with a hand-edited settings.json of wrong types (bad input 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPushButton

from harapp.core.importers.coco import import_coco
from harapp.core.paths import settings_path
from harapp.core.store import Project
from harapp.gui import locate_folder
from harapp.gui.main_window import MainWindow
from tests.core.cocofiles import Img, person, write_coco


@pytest.fixture
def moved(tmp_path: Path) -> tuple[Path, Path]:
    """A project whose 6 photos were moved after the import; returns (project, their new folder)."""
    images = [Img(200 + i, ["A man standing.", "A man stands."], [person(2000 + i)]) for i in range(6)]
    root = write_coco(tmp_path / "coco", images)
    with Project.create(tmp_path / "p.harapp") as project:
        import_coco(project, root)
    new_folder = tmp_path / "archive" / "photos"
    new_folder.parent.mkdir()
    shutil.move(str(root / "val2017"), new_folder)
    return tmp_path / "p.harapp", new_folder


def _window(qtbot, path: Path | None = None) -> MainWindow:  # noqa: ANN001
    window = MainWindow(path)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def _note(window: MainWindow) -> QPushButton:
    button = window.statusBar().findChild(QPushButton, "project_note")
    assert button is not None
    return button


def test_missing_photos_are_noted_and_located(qtbot, moved: tuple[Path, Path]) -> None:  # noqa: ANN001
    path, new_folder = moved
    window = _window(qtbot, path)
    note = _note(window)
    assert note.isVisible() and "6 of 6 photos are missing on disk" in note.text()
    menu_entry = next(a for a in window.menuBar().actions()[0].menu().actions() if "Locate folder" in a.text())
    menu_entry.trigger()
    dialog = window.findChild(locate_folder.LocateFolderDialog)
    assert dialog is not None and dialog.source_id() is not None
    assert not dialog._ok().isEnabled()
    dialog.choose_folder(new_folder.parent)  # the wrong folder: none of the photos is there
    assert "0 of 6" in dialog.preview.text() and not dialog._ok().isEnabled()
    dialog.choose_folder(new_folder)
    assert "6 of 6" in dialog.preview.text() and dialog._ok().isEnabled()
    with qtbot.waitSignal(dialog.located):
        dialog._ok().click()
    assert not note.isVisible()
    assert window.project is not None and window.project.stats().missing == 0
    assert all(r.path.parent == new_folder.resolve() for r in window.project.images())
    window.close()


def test_note_for_a_read_only_project(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p.harapp") as project:
        assert locate_folder.project_note(project) == ""
        project.readonly_reason = "its folder /x is read-only"
        assert locate_folder.project_note(project) == "Read-only: its folder /x is read-only"


def test_locate_without_a_project_says_so(qtbot) -> None:  # noqa: ANN001
    window = _window(qtbot)
    assert locate_folder.open_dialog(window) is None
    assert "Open a project first" in window.statusBar().currentMessage()
    window.close()


@pytest.mark.parametrize("recent", [None, 5, "a.harapp", [1, None], {"a": 1}])
def test_the_app_starts_with_settings_of_the_wrong_type(qtbot, recent: object) -> None:  # noqa: ANN001
    settings_path().write_text(json.dumps({"recent_projects": recent, "weights_cache_dir": 5}), encoding="utf-8")
    window = _window(qtbot)
    assert window.stack.currentWidget() is window.welcome
    window.close()


def test_opening_a_project_registers_what_killed_runs_left(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    import os
    import time

    from harapp.core.paths import models_dir_for
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import train
    from tests.ml.conftest import draw_shapes, project_from_items

    root = tmp_path / "imgs"
    path = tmp_path / "p.harapp"
    project = project_from_items(path, draw_shapes(root, 24), root)
    snapshot = project.snapshot()
    project.close()
    models = models_dir_for(path)
    finished = models / "cnn-scratch-scratch-killed-before-registering.pt"
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu")
    train(config, snapshot, finished)  # no project: as if the run died before it registered the model
    stale = models / f".{finished.name}.x1y2z3.tmp"
    stale.write_bytes(b"half a checkpoint")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    window = _window(qtbot, path)
    assert window.project is not None
    assert [m.path.name for m in window.project.models()] == [finished.name]
    assert window.training_panel.models_table.model_ids() == [window.project.models()[0].id]
    assert not stale.exists()
    window.close()
