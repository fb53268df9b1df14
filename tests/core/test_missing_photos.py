"""Photos deleted or moved after the import (issue 11, bad input 5): stats and show report them, export
refuses (or with --skip-missing leaves them out), and a moved import can be pointed at its new folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from harapp.cli import main
from harapp.core.errors import LabelError, MissingFilesError
from harapp.core.export import export_coco, export_csv, export_folders
from harapp.core.importers.coco import import_coco
from harapp.core.missing_files import absent, find_missing, without_missing
from harapp.core.store import Project
from tests.core.cocofiles import Img, person, write_coco

STANDING = ["A man standing on a hill.", "A man stands near a tree."]


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, Path]:
    """A project of 8 labelled COCO photos; returns (project file, images folder)."""
    images = [Img(100 + i, STANDING, [person(1000 + i)]) for i in range(8)]
    root = write_coco(tmp_path / "coco", images)
    with Project.create(tmp_path / "p.harapp") as project:
        assert import_coco(project, root).labelled == 8
    return tmp_path / "p.harapp", root / "val2017"


def _delete(folder: Path, *ids: int) -> list[str]:
    names = [f"{i:012d}.jpg" for i in ids]
    for name in names:
        (folder / name).unlink()
    return names


def test_stats_and_show_report_deleted_photos(imported: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, folder = imported
    names = _delete(folder, 101, 105, 106)
    with Project.open(path) as project:
        stats = project.stats()
        assert stats.missing == 3 and [Path(p).name for p in stats.missing_examples] == names
        assert project.stats(check_files=False).missing is None
        assert project.missing_files().count == 3
    assert main(["stats", str(path)]) == 0
    out = capsys.readouterr().out
    assert "missing     3 of 8 photos are gone from disk" in out and names[0] in out
    assert main(["stats", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing"] == 3
    assert main(["show", str(path), "coco:101"]) == 0
    assert "MISSING on disk" in capsys.readouterr().out
    assert main(["show", str(path), "coco:102"]) == 0
    assert "MISSING" not in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "coco", "folders"])
def test_export_refuses_with_the_list_unless_told_to_skip(
    imported: tuple[Path, Path], tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, folder = imported
    names = _delete(folder, 103, 104)
    out = tmp_path / f"out-{fmt}"
    assert main(["export", str(path), "-f", fmt, str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 of 8 photos are missing on disk" in err and all(n in err for n in names) and "--skip-missing" in err
    assert not out.exists()
    assert main(["export", str(path), "-f", fmt, str(out), "--skip-missing"]) == 0
    printed = capsys.readouterr().out
    assert "exported 6 images" in printed and "2 images with missing photos left out" in printed
    if fmt == "csv":
        with out.open(encoding="utf-8") as handle:
            assert len(list(csv.reader(handle))) == 1 + 6
    elif fmt == "coco":
        assert len(json.loads(out.read_text(encoding="utf-8"))["images"]) == 6
    else:
        assert len(list(out.rglob("*.jpg"))) == 6


def test_a_moved_folder_is_refused_by_every_export(imported: tuple[Path, Path], tmp_path: Path) -> None:
    """The whole folder moved: before, `export -f folders` wrote an empty tree and said nothing."""
    path, folder = imported
    folder.rename(tmp_path / "elsewhere")
    with Project.open(path, readonly=True) as project:
        for export, out in ((export_csv, "a.csv"), (export_coco, "a.json"), (export_folders, "tree")):
            with pytest.raises(MissingFilesError, match="8 of 8 photos are missing") as info:
                export(project, tmp_path / out)
            assert info.value.missing.count == 8
            assert not (tmp_path / out).exists()


def test_locate_folder_re_roots_a_moved_import(imported: tuple[Path, Path], tmp_path: Path) -> None:
    path, folder = imported
    moved = tmp_path / "moved" / "photos"
    moved.parent.mkdir()
    shutil.move(str(folder), moved)
    with Project.open(path) as project:
        before = (project.label_revision(), [(r.id, r.label) for r in project.images()])
        source = project.sources()[0]["id"]
        assert project.stats().missing == 8
        assert project.source_files_under(source, tmp_path) == (0, 8)  # the wrong folder: nothing there
        assert project.source_files_under(source, moved) == (8, 8)
        project.relocate_source(source, moved)
        assert project.stats().missing == 0
        assert all(r.path.parent == moved.resolve() for r in project.images())
        assert (project.label_revision(), [(r.id, r.label) for r in project.images()]) == before
        with pytest.raises(LabelError, match="no such folder"):
            project.relocate_source(source, tmp_path / "nowhere")
        other = project.add_source("coco", tmp_path)
        with pytest.raises(LabelError, match="already uses it"):
            project.relocate_source(source, tmp_path)
        assert other != source


def test_absent_lists_each_folder_once_and_copes_with_odd_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"x")
    (tmp_path / "a" / "sub").mkdir()  # a folder is not a photo
    (tmp_path / "file").write_bytes(b"x")
    paths = [
        tmp_path / "a" / "x.jpg",
        tmp_path / "a" / "y.jpg",
        tmp_path / "a" / "sub",
        tmp_path / "gone" / "z.jpg",
        tmp_path / "file" / "w.jpg",  # a parent that is a file
    ]
    assert absent(paths) == [False, True, True, True, True]
    found = find_missing((i, p) for i, p in enumerate(paths))
    assert found.image_ids == (1, 2, 3, 4) and found.checked == 5
    assert found.describe(2).startswith("4 of 5 photos are missing on disk: ") and "and 2 more" in found.describe(2)


def test_unlistable_folder_falls_back_to_a_stat_per_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harapp.core import missing_files

    (tmp_path / "x.jpg").write_bytes(b"x")
    monkeypatch.setattr(missing_files, "_names_in", lambda folder: None)  # as for a folder without read permission
    assert absent([tmp_path / "x.jpg", tmp_path / "y.jpg"]) == [False, True]


def test_training_snapshot_leaves_missing_photos_out(imported: tuple[Path, Path]) -> None:
    path, folder = imported
    _delete(folder, 100, 107)
    with Project.open(path, readonly=True) as project:
        snapshot = project.snapshot()
    kept, missing = without_missing(snapshot)
    assert len(snapshot.items) == 8 and len(kept.items) == 6 and missing.count == 2
    assert all(item.path.is_file() for item in kept.items)
    assert kept.class_names == snapshot.class_names and kept.revision == snapshot.revision
