"""Imports from the GUI: background worker with progress, end summary, errors with their cause, cancel, demo."""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image

from harapp.core.demo.dataset import make_demo
from harapp.core.paths import demo_project_path
from harapp.core.store import Project
from harapp.gui.import_dialog import ImportDialog
from harapp.gui.main_window import MainWindow
from tests.gui.curation_data import make_curation_project


def _dialog(qtbot, kind: str, source: Path, project: Path | None) -> ImportDialog:  # noqa: ANN001
    dialog = ImportDialog(kind, project)
    qtbot.addWidget(dialog)
    dialog.source.setText(str(source))
    return dialog


def _run(qtbot, dialog: ImportDialog) -> None:  # noqa: ANN001
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)


def test_coco_import_summary(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    dataset = make_demo(tmp_path / "coco", n_images=12)
    target = tmp_path / "new.harapp"
    dialog = _dialog(qtbot, "coco", dataset, None)
    dialog.project.setText(str(target))
    dialog.project.setModified(True)
    with qtbot.waitSignal(dialog.imported, timeout=30_000) as blocker:
        dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert blocker.args == [target]
    summary = dialog.summary
    with Project.open(target, readonly=True) as project:
        stats = project.stats()
    assert summary.images == stats.images == 12
    assert (summary.labelled, summary.uncertain) == (stats.labelled, stats.uncertain)
    assert summary.missing == 0
    text = dialog.report_view.toPlainText()
    assert "Imported 12 images" in text and f"{stats.labelled} labelled from their captions" in text
    assert "not on disk" not in text and "Missing" not in text, "nothing to alarm anyone about"
    assert dialog.progress.value() == dialog.progress.maximum()


def test_a_partial_download_is_described_calmly(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    dataset = make_demo(tmp_path / "coco", n_images=12)
    photos = sorted((dataset / "images").glob("*.jpg"))
    for photo in photos[:4]:  # a subset download: the annotations name more images than the disk holds
        photo.unlink()
    dialog = _dialog(qtbot, "coco", dataset, None)
    dialog.project.setText(str(tmp_path / "subset.harapp"))
    dialog.project.setModified(True)
    _run(qtbot, dialog)
    text = dialog.report_view.toPlainText()
    assert "The annotations name 12 images; 8 of them are on disk" in text
    assert "Missing files" not in text


def test_bad_annotations_show_the_cause_and_leave_no_project(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "broken"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    (root / "annotations" / "captions_val2017.json").write_text("{ this is not json")
    target = tmp_path / "broken.harapp"
    dialog = _dialog(qtbot, "coco", root, None)
    dialog.project.setText(str(target))
    dialog.project.setModified(True)
    _run(qtbot, dialog)
    assert dialog.summary is None
    assert "captions_val2017.json" in dialog.error_text
    assert "Cause:" in dialog.report_view.toPlainText() and "captions_val2017.json" in dialog.report_view.toPlainText()
    assert not target.exists()  # the failed import into a new file leaves nothing behind


def test_missing_folder_is_reported_before_starting(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    dialog = _dialog(qtbot, "coco", tmp_path / "nowhere", tmp_path / "p.harapp")
    dialog.start()
    assert not dialog.is_running()
    assert "nowhere" in dialog.report_view.toPlainText() and "no such folder" in dialog.report_view.toPlainText()


def test_cancel_leaves_the_project_as_it_was(qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    import harapp.gui.import_worker as import_worker

    def slow_import(project, root, progress=None, **_kwargs):  # noqa: ANN001, ANN202
        with project.transaction():
            source = project.add_source("coco", root, {})
            for i in range(2000):  # runs until the cancel flag makes progress() raise
                project.upsert_image(source, f"x{i}.jpg", 10, 10)
                progress("importing", i, 2000)
                time.sleep(0.005)
        raise AssertionError("the import was not cancelled")

    monkeypatch.setattr(import_worker, "import_coco", slow_import)
    existing = make_curation_project(tmp_path)
    dialog = _dialog(qtbot, "coco", tmp_path / "images", existing.path)
    dialog.into_open.setChecked(True)
    dialog.start()
    qtbot.waitUntil(lambda: "importing" in dialog.stage.text(), timeout=10_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=10_000)
    assert "cancelled" in dialog.report_view.toPlainText()
    with Project.open(existing.path, readonly=True) as project:
        assert project.count_images() == 12  # nothing of the cancelled import was committed


def test_folder_import_into_the_open_project(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    existing = make_curation_project(tmp_path)
    folder = tmp_path / "more"
    for name in ("sitting", "running"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (30, 20), (10, 200, 10)).save(folder / name / f"{name}.jpg")
    window = MainWindow(existing.path)
    qtbot.addWidget(window)
    dialog = window.import_dialog("folder")
    dialog.source.setText(str(folder))
    assert not dialog.start_button.isEnabled(), "with a project open, the dialog asks where the images go first"
    assert "curation.harapp" in dialog.into_open.text()
    dialog.into_open.setChecked(True)
    assert dialog.target_path() == existing.path
    with qtbot.waitSignal(dialog.imported, timeout=30_000):
        dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert window.workspace.model.rowCount() == 14  # the open project's gallery was reloaded
    labels = {window.workspace.model.row_at(r).label for r in range(12, 14)}
    assert labels == {"sitting", "running"}
    window.close()


def test_import_with_a_project_open_can_make_a_new_project(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    existing = make_curation_project(tmp_path)
    dataset = make_demo(tmp_path / "coco", n_images=6)
    window = MainWindow(existing.path)
    qtbot.addWidget(window)
    dialog = window.import_dialog("coco")
    dialog.source.setText(str(dataset))
    target = tmp_path / "elsewhere" / "fresh.harapp"
    dialog.project.setText(str(target))
    dialog.project.textEdited.emit(str(target))  # typing a path (or Browse…) chooses "a new project"
    assert dialog.into_new.isChecked() and dialog.start_button.isEnabled()
    with qtbot.waitSignal(dialog.imported, timeout=30_000):
        dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running(), timeout=30_000)
    assert window.project is not None and window.project.path == target, "the new project is opened"
    with Project.open(existing.path, readonly=True) as old:
        assert old.count_images() == 12, "the project that was open is unchanged"
    window.close()


def test_the_demo_project_defaults_to_a_new_project(qtbot) -> None:  # noqa: ANN001
    from harapp.core.demo.project import create_demo_project

    create_demo_project(demo_project_path().parent, n_images=4)
    dialog = ImportDialog("coco", demo_project_path())
    qtbot.addWidget(dialog)
    assert dialog.into_new.isChecked(), "real photos never go into the generated demo by default"


def test_demo_project_created_in_background_then_opened(qtbot) -> None:  # noqa: ANN001
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    handle = window.create_demo(n_images=8)
    assert handle is not None
    qtbot.waitUntil(lambda: window.project is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not window.running_jobs(), timeout=10_000)
    assert window.project.path == demo_project_path()
    assert window.workspace.model.rowCount() == 8
    assert window.windowTitle().startswith("demo.harapp")
    # A second request opens the existing demo at once, without a job.
    window.close_project()
    assert window.create_demo() is None and window.project is not None
    window.close()
