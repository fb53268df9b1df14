"""Folder import: ImageFolder trees give human labels, flat folders none; non-images are reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from harapp.core.errors import DatasetError
from harapp.core.importers.folder import class_to_folder, detect_layout, folder_to_class, import_folder
from harapp.core.store import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    with Project.create(tmp_path / "p.harapp") as p:
        yield p


def _jpeg(path: Path, size: tuple[int, int] = (20, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 200, 30)).save(path)
    return path


def _labels(project: Project) -> dict[str, tuple[str, str] | None]:
    return {r.rel_path: (r.label.class_name, r.label.source) if r.label else None for r in project.images()}


def test_imagefolder_tree(project: Project, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _jpeg(tree / "sitting" / "a.jpg", (30, 20))
    _jpeg(tree / "sitting" / "nested" / "b.png")
    _jpeg(tree / "standing" / "c.jpg")
    _jpeg(tree / "jumping" / "d.jpg")
    (tree / "standing" / "notes.txt").write_text("not a photo")
    (tree / "standing" / "fake.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    (tree / "standing" / ".DS_Store").write_bytes(b"\0\0")
    report = import_folder(project, tree)
    assert report.images == 4 and report.labelled == 4
    assert dict(report.skipped) == {
        "standing/fake.jpg": "not an image (no known image format)",
        "standing/notes.txt": "not an image (no known image format)",
    }
    assert _labels(project) == {
        "sitting/a.jpg": ("sitting", "human"),
        "sitting/nested/b.png": ("sitting", "human"),
        "standing/c.jpg": ("standing", "human"),
        "jumping/d.jpg": ("jumping", "human"),
    }
    assert project.class_names()[-1] == "jumping"
    record = project.image(project.find_image("a.jpg"))
    assert (record.width, record.height) == (30, 20)


def test_flat_folder_is_recursive_and_unlabelled(project: Project, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    _jpeg(folder / "x.jpg")
    _jpeg(folder / "2019" / "y.jpg")
    (folder / "readme.md").write_text("hello")
    report = import_folder(project, folder)
    assert report.images == 2 and report.labelled == 0
    assert report.skipped == (("readme.md", "not an image (no known image format)"),)
    assert _labels(project) == {"x.jpg": None, "2019/y.jpg": None}


@pytest.mark.parametrize(
    ("dirs", "files", "expected"),
    [
        (["walking", "sitting"], [], "imagefolder"),
        (["walking", "cartwheel"], [], "imagefolder"),  # a plausible new class
        (["images"], [], "flat"),
        (["2017", "2018"], [], "flat"),
        (["walking"], ["loose.jpg"], "flat"),
        ([], [], "flat"),
    ],
)
def test_layout_detection(tmp_path: Path, dirs: list[str], files: list[str], expected: str) -> None:
    for d in dirs:
        (tmp_path / d).mkdir()
    for f in files:
        _jpeg(tmp_path / f)
    (tmp_path / ".hidden").mkdir()
    assert detect_layout(tmp_path, {"walking", "running", "sitting", "standing"}) == expected


def test_forced_flat_layout_ignores_class_folders(project: Project, tmp_path: Path) -> None:
    _jpeg(tmp_path / "t" / "sitting" / "a.jpg")
    report = import_folder(project, tmp_path / "t", layout="flat")
    assert report.labelled == 0 and _labels(project) == {"sitting/a.jpg": None}


def test_reimport_keeps_corrections_and_adds_nothing(project: Project, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _jpeg(tree / "sitting" / "a.jpg")
    _jpeg(tree / "standing" / "b.jpg")
    import_folder(project, tree)
    project.set_label(project.find_image("a.jpg"), "walking", "human")
    import_folder(project, tree)
    assert project.count_images() == 2
    assert _labels(project)["sitting/a.jpg"] == ("walking", "human")


def test_class_folder_names_round_trip() -> None:
    for name in ["walking/running", "sitting", "odd: name", ".hidden", "50% done"]:
        folder = class_to_folder(name)
        assert "/" not in folder and not folder.startswith(".")
        assert folder_to_class(folder) == name


def test_bad_layout_and_missing_folder(project: Project, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        import_folder(project, tmp_path / "absent")
    with pytest.raises(DatasetError, match="layout"):
        import_folder(project, tmp_path, layout="pyramid")
