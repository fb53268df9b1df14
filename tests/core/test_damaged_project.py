"""A project file with damaged data pages (issue 11, bad input 7): refused on open with 'damaged' and the
way out, never a traceback or a write into it; `harapp repair` copies what is readable into a new file."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest

from harapp.cli import main
from harapp.core.errors import ProjectDamagedError
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from harapp.core.store import health as store_health
from harapp.core.store.repair import default_target, repair_project
from tests.core.cocofiles import Img, person, write_coco

N = 200
CAPTIONS = ["A man standing on a hill near a tree.", "A man stands next to a red bus on a busy street."]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A project of 200 images with persons, caption labels and some human corrections; (file, COCO root)."""
    folder = tmp_path_factory.mktemp("healthy")
    root = write_coco(folder / "coco", [Img(1000 + i, CAPTIONS, [person(5000 + i)]) for i in range(N)])
    with Project.create(folder / "p.harapp") as project:
        import_coco(project, root)
        for image_id in project.image_ids()[::10]:
            project.set_label(image_id, "sitting")
    return folder / "p.harapp", root


def _leaf_pages(path: Path, table: str) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf'", (table,)).fetchall()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table to find a table's pages")
    finally:
        conn.close()
    return [r[0] for r in rows]


def damage(healthy: tuple[Path, Path], tmp_path: Path, table: str, keep_mtime: bool = False) -> Path:
    """A copy of the project with one leaf page of `table` (from the middle of it) overwritten."""
    source, _ = healthy
    path = tmp_path / "damaged.harapp"
    path.write_bytes(source.read_bytes())
    pages = _leaf_pages(path, table)
    assert len(pages) >= 2, pages
    page = pages[len(pages) // 2]
    stat = path.stat()
    with path.open("r+b") as handle:
        handle.seek((page - 1) * 4096)
        # A leaf's type byte, then seeded garbage that claims 65,535 cells: random garbage alone sometimes read as
        # a valid, emptier page (a damage nobody could see), so the tests failed about one run in a few hundred.
        garbage = bytearray(random.Random(page).randbytes(4095))
        garbage[2:4] = b"\xff\xff"  # the page header's cell count (bytes 3-4 of the page)
        handle.write(bytes([0x0D]) + bytes(garbage))
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return path


@pytest.mark.parametrize("table", ["images", "persons", "history"])
def test_a_damaged_file_is_refused_on_open(healthy: tuple[Path, Path], tmp_path: Path, table: str) -> None:
    path = damage(healthy, tmp_path, table)
    before = path.read_bytes()
    with pytest.raises(ProjectDamagedError) as info:
        Project.open(path)
    message = str(info.value)
    assert str(path) in message and "damaged" in message and f"harapp repair {path}" in message
    with pytest.raises(ProjectDamagedError):
        Project.open(path, readonly=True)
    assert path.read_bytes() == before


def _commands(path: Path, root: Path, out: Path) -> list[list[str]]:
    p = str(path)
    return [
        ["stats", p],
        ["stats", p, "--json"],
        ["show", p, "coco:1005"],
        ["label", p, "coco:1005", "walking"],
        ["label", p, "coco:1005", "none"],
        ["undo", p],
        ["classes", p, "list"],
        ["classes", p, "add", "jumping"],
        ["classes", p, "rename", "walking", "strolling"],
        ["classes", p, "merge", "walking", "running", "--into", "moving"],
        ["classes", p, "undo"],
        ["export", p, "-f", "csv", str(out / "a.csv")],
        ["export", p, "-f", "coco", str(out / "a.json")],
        ["export", p, "-f", "folders", str(out / "tree")],
        ["import-coco", str(root), "-p", p],
        ["import-folder", str(root / "val2017"), "-p", p],
    ]


@pytest.mark.parametrize("keep_mtime", [False, True], ids=["checked-on-open", "seen-while-working"])
def test_every_command_says_damaged_and_writes_nothing(
    healthy: tuple[Path, Path], tmp_path: Path, keep_mtime: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """keep_mtime: the damage keeps the fingerprint harapp recorded, so the open skips quick_check (see
    store_health) and the damage is met while reading or writing; the message is the same."""
    path = damage(healthy, tmp_path, "images", keep_mtime)
    if keep_mtime:
        store_health.remember_healthy(path)
    before = path.read_bytes()
    failed = []
    for args in _commands(path, healthy[1], tmp_path):
        code = main(args)
        err = capsys.readouterr().err
        if code != 0 and "damaged" in err and "harapp repair" in err and "Traceback" not in err:
            continue
        if keep_mtime and code == 0:
            continue  # the command did not touch the damaged page (e.g. `classes list`)
        failed.append((args[0], code, err[-300:]))
    assert not failed
    assert path.read_bytes() == before
    assert not store_health.known_healthy(path)  # once seen, the next open checks the whole file


@pytest.mark.parametrize("table", ["images", "persons", "history"])
def test_repair_copies_what_is_readable(healthy: tuple[Path, Path], tmp_path: Path, table: str) -> None:
    path = damage(healthy, tmp_path, table)
    before = path.read_bytes()
    report = repair_project(path)
    assert report.target == default_target(path) == tmp_path / "damaged.repaired.harapp"
    assert path.read_bytes() == before
    by_table = {t.table: t for t in report.tables}
    assert by_table[table].unreadable > 0 and report.lost > 0
    with Project.open(report.target) as repaired, Project.open(healthy[0], readonly=True) as original:
        assert repaired.class_names() == original.class_names()
        kept = {r.coco_id: r for r in repaired.images()}
        assert 0.5 * N < len(kept) <= N
        assert len(kept) == N - (by_table["images"].unreadable if table == "images" else 0)
        for record in original.images():
            if record.coco_id in kept and table != "history":
                # Everything that survived is exactly as it was: labels (human ones too), captions, persons.
                copy = kept[record.coco_id]
                assert (copy.label and copy.label.class_name, copy.captions) == (
                    record.label and record.label.class_name,
                    record.captions,
                )
        repaired.set_label(repaired.image_ids()[0], "running")  # the copy is a working project


def test_repair_command_and_its_refusals(
    healthy: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = damage(healthy, tmp_path, "persons")
    out = tmp_path / "fixed.harapp"
    assert main(["repair", str(path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"repaired copy: {out}" in text and "persons" in text and "unreadable" in text and "unchanged" in text
    assert main(["stats", str(out)]) == 0
    assert main(["repair", str(path), "--out", str(out)]) == 1  # never overwrites
    assert "already exists" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["repair", str(notes)]) == 1
    assert "nothing can be recovered" in capsys.readouterr().err or "not a harapp project" in capsys.readouterr().err


def test_a_healthy_file_is_checked_once_then_trusted(healthy: tuple[Path, Path], tmp_path: Path) -> None:
    path = tmp_path / "copy.harapp"
    path.write_bytes(healthy[0].read_bytes())
    assert not store_health.known_healthy(path)
    with Project.open(path) as project:
        project.set_label(project.image_ids()[0], "walking")
    assert store_health.known_healthy(path)  # a clean close records the file as harapp left it
    path.touch()  # changed by something else: checked again on the next open
    assert not store_health.known_healthy(path)
