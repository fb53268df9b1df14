"""An import into a new project file that fails leaves no file; the CLI and the GUI report an import alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harapp.cli import main
from harapp.core.importers.coco import import_coco
from harapp.core.importers.summary import summarise
from harapp.core.importers.target import import_target
from harapp.core.store import Project
from tests.core.cocofiles import SITTING, STANDING, Img, person, write_coco


class Boom(Exception):
    pass


def test_a_new_project_file_is_removed_when_the_import_fails(tmp_path: Path) -> None:
    target = tmp_path / "new.harapp"
    with pytest.raises(Boom), import_target(target) as (project, created):
        assert created and target.exists()
        project.add_source("folder", tmp_path, {})
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_an_existing_project_is_kept_when_the_import_fails(tmp_path: Path) -> None:
    target = tmp_path / "old.harapp"
    Project.create(target).close()
    with pytest.raises(Boom), import_target(target) as (_project, created):
        assert not created
        raise Boom
    with Project.open(target) as project:
        assert project.count_images() == 0


def test_the_command_line_prints_the_guis_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_coco(tmp_path / "coco", [Img(1, STANDING, [person(1)]), Img(2, SITTING, [person(2)])])
    target = tmp_path / "p.harapp"
    assert main(["import-coco", str(root), "-p", str(target)]) == 0
    printed = capsys.readouterr().out
    with Project.open_or_create(tmp_path / "again.harapp") as project:
        expected = summarise(import_coco(project, root), project, target, True).text()
    assert expected in printed


def test_a_failed_folder_import_from_the_command_line_leaves_no_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = tmp_path / "tree"
    (tree / "sitting").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tree / "sitting" / "a.jpg")
    assert main(["import-folder", str(tree), "-p", str(tmp_path / "f.harapp")]) == 0
    assert "1 labelled from their folder's name" in capsys.readouterr().out
    assert main(["import-folder", str(tmp_path / "missing"), "-p", str(tmp_path / "g.harapp")]) == 1
    assert not (tmp_path / "g.harapp").exists()
