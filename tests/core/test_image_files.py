"""Which files are photos, and the photos a mix of files and folders names (the CLI's and the GUI's inputs)."""

from __future__ import annotations

from pathlib import Path

from harapp.core.image_files import IMAGE_SUFFIXES, expand_image_paths, is_image_name


def test_image_names_are_recognised_whatever_the_case() -> None:
    assert all(is_image_name(Path(f"a{s}")) and is_image_name(Path(f"a{s.upper()}")) for s in IMAGE_SUFFIXES)
    assert not is_image_name(Path("notes.txt")) and not is_image_name(Path("jpg"))


def test_folders_expand_to_their_photos_sorted_and_files_stay_as_given(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for name in ("b.png", "a.JPG", "sub/c.webp", "notes.txt", "sub/deeper/d.jpeg"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    (folder / "dir.jpg").mkdir()  # a folder with a photo's name is not a photo
    given = tmp_path / "report.pdf"
    found = expand_image_paths([given, folder])
    assert found == [
        given,
        folder / "a.JPG",
        folder / "b.png",
        folder / "sub" / "c.webp",
        folder / "sub" / "deeper" / "d.jpeg",
    ]
    assert expand_image_paths([]) == []
