"""Messages where tracebacks were (issue 11, bad input 8) and the CLI items of issue 10: bad export
destinations, a harapp folder variable naming a file, output piped into `head` for every command, image
references that could mean two images, and the import summary in words."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harapp.cli import main
from harapp.core.importers.coco import import_coco
from harapp.core.store import Project
from tests.core.cocofiles import Img, person, small_dataset, write_coco

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project_file(tmp_path: Path) -> Path:
    root = write_coco(tmp_path / "coco", small_dataset())
    with Project.create(tmp_path / "p.harapp") as project:
        import_coco(project, root)
    return tmp_path / "p.harapp"


@pytest.mark.parametrize("fmt", ["csv", "coco", "folders"])
def test_export_under_a_file(project_file: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "sub" / "export"
    assert main(["export", str(project_file), "-f", fmt, str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out}: cannot export there: {blocker} is a file, not a folder" in err and "Traceback" not in err
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("fmt", ["csv", "coco"])
def test_file_export_onto_a_folder(
    project_file: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    assert main(["export", str(project_file), "-f", fmt, str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{folder}: is a folder; give a file name" in err and "Traceback" not in err
    assert (folder / "keep.txt").read_text() == "mine"


def test_harapp_folder_variable_naming_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "settings-file"
    blocker.write_text("x")
    monkeypatch.setenv("HARAPP_CONFIG_DIR", str(blocker))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # a display, so the app would start
    assert main(["gui"]) == 1
    err = capsys.readouterr().err
    assert f"HARAPP_CONFIG_DIR={blocker}: cannot use it as harapp's folder (it is a file" in err


# -- output into a closed pipe ---------------------------------------------------------------------------------


class _ClosedPipe:
    """sys.stdout as `head` leaves it: the reader has gone, every write fails with EPIPE."""

    def __init__(self) -> None:
        read, self.fd = os.pipe()
        os.close(read)
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def closed_stdout() -> Iterator[_ClosedPipe]:
    # Set inside the test, not in a fixture: pytest's capture puts its own sys.stdout back when a test starts.
    pipe, saved = _ClosedPipe(), sys.stdout
    sys.stdout = pipe  # type: ignore[assignment]
    try:
        yield pipe
    finally:
        sys.stdout = saved
        os.close(pipe.fd)


def _commands(project: Path, tmp_path: Path) -> list[list[str]]:
    p = str(project)
    coco = tmp_path / "coco"
    return [
        ["stats", p],
        ["stats", p, "--json"],
        ["show", p, "coco:101"],
        ["label", p, "coco:101", "walking"],
        ["undo", p],
        ["classes", p, "list"],
        ["classes", p, "add", "jumping"],
        ["export", p, "-f", "csv", str(tmp_path / "x.csv")],
        ["import-coco", str(coco), "-p", str(tmp_path / "q.harapp")],
        ["import-folder", str(coco / "val2017"), "-p", str(tmp_path / "f.harapp")],
        ["demo", str(tmp_path / "demo"), "--images", "4"],
        ["repair", p, "--out", str(tmp_path / "r.harapp")],
        ["--version"],
        ["--help"],
    ]


def test_every_command_stops_quietly_when_its_reader_has_gone(
    project_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in _commands(project_file, tmp_path):
        with closed_stdout():
            try:
                code = main(args)
            except SystemExit as exc:
                code = int(exc.code or 0)
        err = capsys.readouterr().err
        assert code == 141, (args, code, err)
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)


@pytest.mark.parametrize("args", [["stats", "{p}"], ["--help"]], ids=lambda a: a[0])
def test_piped_into_a_reader_that_has_gone(project_file: Path, args: list[str]) -> None:
    """The issue's own case in a real process, `harapp stats P | head -1`, made deterministic: the reading
    end of the pipe is closed before harapp writes anything."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "harapp", *(a.format(p=project_file) for a in args)]
    try:
        result = subprocess.run(command, stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write)
    assert result.stderr == ""  # no traceback, no "Exception ignored ... BrokenPipeError"
    # 141 = 128 + SIGPIPE, as a shell reports; argparse's --help ignores a failed write itself and exits 0.
    assert result.returncode == (0 if args == ["--help"] else 141)


# -- issue 10: image references, the import summary ------------------------------------------------------------


def test_a_number_that_names_two_images_says_which(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Project.create(tmp_path / "p.harapp") as project:
        source = project.add_source("coco", tmp_path)
        first = project.upsert_image(source, "a.jpg", 10, 10, coco_id=2)  # project id 1, COCO id 2
        second = project.upsert_image(source, "b.jpg", 10, 10, coco_id=139)  # project id 2, COCO id 139
        assert (first, second) == (1, 2)
        assert project.resolve_image("#2").image_id == 2 and not project.resolve_image("#2").note
        assert project.resolve_image("coco:2").image_id == 1
        assert project.resolve_image("COCO: 139").image_id == 2
        match = project.resolve_image("2")
        assert match.image_id == 2 and "COCO id 2 is image #1" in match.note and "coco:2" in match.note
        assert project.resolve_image("139").note == "139 read as COCO id 139 (image #2)"
        assert project.resolve_image("1").note == ""  # no image has COCO id 1
    path = str(tmp_path / "p.harapp")
    assert main(["show", path, "2"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("image #2: ") and "COCO id 2 is image #1" in err
    assert main(["show", path, "coco:2"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("image #1: ") and err == ""
    for ref, cause in (("#7", "no image with image #7"), ("coco:7", "no image with COCO id 7"), ("9" * 30, "no image")):
        assert main(["show", path, ref]) == 1
        assert cause in capsys.readouterr().err


def test_import_summary_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = small_dataset() + [Img(107 + i, ["A man standing."], [person(3000 + i)], on_disk=False) for i in range(4)]
    root = write_coco(tmp_path / "coco", images)
    assert main(["import-coco", str(root), "-p", str(tmp_path / "p.harapp")]) == 0
    out = capsys.readouterr().out
    assert "Imported 4 images into p.harapp: 3 labelled from their captions, 1 uncertain" in out
    assert "The annotations name 10 images; 5 of them are on disk (not found: e.g. 000000000106.jpg" in out
    assert "Left out 1 images without a person (--all-images imports them)" in out
    assert "imported    annotations name 10 images; 5 found on disk" in out  # the stats that follow
    for raw in ("source_ids", "missing_examples", "skipped_no_person", "orphan", ": ("):
        assert raw not in out
    assert main(["stats", str(tmp_path / "p.harapp"), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["named_by_annotations"], stats["not_found_at_import"], stats["missing"]) == (10, 5, 0)
