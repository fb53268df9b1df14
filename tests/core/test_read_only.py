"""A project in a read-only folder, or a read-only project file (issue 11, bad input 6), and imports into a
read-only folder (bad input 8): read commands work and say the project is read-only, writes are refused with
that reason, never 'not a harapp project', and nothing is changed.

Permissions mean nothing to root, so under root the commands run in a child process that drops to the
user 'nobody' after importing harapp (the interpreter lives in root's home, which nobody may not read).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from tests.core.cocofiles import Img, person, write_coco

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534
RUNNER = f"""
import os, sys
import harapp.cli, harapp.cli.core_commands, harapp.core.export, harapp.core.importers.coco, harapp.core.demo.project
import harapp.core.importers.folder, harapp.core.store.repair
harapp.cli.build_parser()
if os.geteuid() == 0:
    os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})
sys.exit(harapp.cli.main(sys.argv[1:]))
"""

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def run_as_other_user(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """harapp's CLI as a user without write permission on root's files (ourselves when we are not root)."""
    tmp_path = tmp_path_factory.mktemp("runner")
    script = tmp_path / "runner.py"
    script.write_text(RUNNER, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home)}
    for name in ("CONFIG", "CACHE", "DATA"):
        env[f"HARAPP_{name}_DIR"] = str(home / name.lower())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )

    probe = run("--version")
    if probe.returncode != 0:
        pytest.skip(f"cannot run harapp as another user here: {probe.stderr[-300:]}")
    return run


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder the other user can reach (pytest's own lies in a folder private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="harapp-read-only-"))
    folder.chmod(0o755)
    yield folder
    for path in folder.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def locked(shared_tmp: Path) -> tuple[Path, Path]:
    """A labelled project in a folder (and a file) the other user cannot write; (project, writable folder)."""
    tmp_path = shared_tmp
    root = write_coco(
        tmp_path / "coco", [Img(300 + i, ["A man standing.", "A man stands."], [person(i)]) for i in range(4)]
    )
    folder = tmp_path / "locked"
    folder.mkdir()
    with Project.create(folder / "p.harapp") as project:
        import_coco(project, root)
        project.set_label(project.image_ids()[0], "sitting")
    writable = tmp_path / "out"
    writable.mkdir()
    writable.chmod(0o777)
    if os.geteuid() != 0:
        (folder / "p.harapp").chmod(0o444)
        folder.chmod(0o555)
    return folder / "p.harapp", writable


def test_read_commands_work_and_say_read_only(locked: tuple[Path, Path], run_as_other_user: Run) -> None:
    path, writable = locked
    before = path.read_bytes()
    stats = run_as_other_user("stats", str(path))
    assert stats.returncode == 0, stats.stderr
    assert "images      4" in stats.stdout and "read-only" in stats.stderr
    show = run_as_other_user("show", str(path), "coco:300")
    assert show.returncode == 0 and "label: sitting (human)" in show.stdout
    export = run_as_other_user("export", str(path), "-f", "csv", str(writable / "labels.csv"))
    assert export.returncode == 0, export.stderr
    assert (writable / "labels.csv").read_text(encoding="utf-8").count("\n") == 5
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["p.harapp"]  # not even a -shm file


@pytest.mark.parametrize(
    "args",
    [
        ("label", "{p}", "coco:301", "walking"),
        ("undo", "{p}"),
        ("classes", "{p}", "add", "jumping"),
        ("classes", "{p}", "merge", "walking", "running", "--into", "moving"),
        ("import-folder", "{coco}/val2017", "-p", "{p}"),
    ],
    ids=lambda a: a[0] if a[0] != "classes" else f"classes-{a[2]}",
)
def test_writes_are_refused_with_the_reason(
    locked: tuple[Path, Path], run_as_other_user: Run, args: tuple[str, ...]
) -> None:
    path, _ = locked
    before = path.read_bytes()
    coco = path.parent.parent / "coco"
    result = run_as_other_user(*(a.format(p=path, coco=coco) for a in args))
    assert result.returncode == 1
    assert "opened read-only because" in result.stderr and "nothing was changed" in result.stderr
    assert "not a harapp project" not in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == before


def test_new_projects_and_the_demo_in_a_read_only_folder(locked: tuple[Path, Path], run_as_other_user: Run) -> None:
    path, _ = locked
    folder = path.parent
    coco = folder.parent / "coco"
    result = run_as_other_user("import-coco", str(coco), "-p", str(folder / "new.harapp"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{folder / 'new.harapp'}: cannot create the project there" in result.stderr and "read-only" in result.stderr
    demo = run_as_other_user("demo", str(folder / "demo"))
    assert demo.returncode == 1 and "Traceback" not in demo.stderr
    assert "cannot write the demo there" in demo.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["p.harapp"]


def test_unmerged_changes_in_a_read_only_folder_are_named(shared_tmp: Path, run_as_other_user: Run) -> None:
    """A copy taken while the app was open carries a -wal file; reading it needs the folder to be writable."""
    tmp_path = shared_tmp
    live = tmp_path / "live"
    live.mkdir()
    with Project.create(live / "p.harapp") as project:
        source = project.add_source("test", tmp_path)
        project.upsert_image(source, "a.jpg", 10, 10)
        holder = sqlite3.connect(live / "p.harapp")  # keeps the -wal from being merged when we close
        holder.execute("SELECT COUNT(*) FROM images").fetchone()
        project.set_label(project.image_ids()[0], "walking")
        copy = tmp_path / "copy"
        copy.mkdir()
        for name in ("p.harapp", "p.harapp-wal"):
            shutil.copy(live / name, copy / name)
    holder.close()
    if os.geteuid() != 0:
        copy.chmod(0o555)
    result = run_as_other_user("stats", str(copy / "p.harapp"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "p.harapp-wal" in result.stderr and "open it once where it is writable" in result.stderr
