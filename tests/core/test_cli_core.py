"""The core subcommands, run through harapp.cli.main as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harapp.cli import main
from harapp.core.store import Project
from tests.core.helpers import project_with_images


@pytest.fixture
def project_file(tmp_path: Path) -> Path:
    project, _ = project_with_images(tmp_path, n=4)
    project.close()
    return tmp_path / "p.harapp"


def test_label_show_undo_and_stats(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(project_file), "img1.jpg", "sitting"]) == 0
    assert "unlabelled -> sitting (saved)" in capsys.readouterr().out
    assert main(["stats", str(project_file), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["per_class"]["sitting"] == 1 and stats["per_source"]["human"] == 1
    assert main(["show", str(project_file), "img1.jpg"]) == 0
    assert "label: sitting (human)" in capsys.readouterr().out
    assert main(["undo", str(project_file)]) == 0
    with Project.open(project_file) as project:
        assert project.stats().labelled == 0


def test_repeated_undo_steps_back_through_the_history(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Project.open(project_file) as project:
        first, second, third = project.image_ids()[:3]
        project.set_label(first, "sitting")
        project.set_labels([(second, "running"), (third, "running")])  # one bulk action
        project.set_label(first, "walking")
    assert main(["undo", str(project_file)]) == 0  # walking -> sitting
    assert main(["undo", str(project_file)]) == 0  # the bulk change, both images
    with Project.open(project_file) as project:
        labels = {i: project.image(i).label for i in (first, second, third)}
        assert labels[first].class_name == "sitting"
        assert labels[second] is None and labels[third] is None
    assert main(["undo", str(project_file)]) == 0  # the first change
    assert main(["undo", str(project_file)]) == 1  # nothing left: an undo never undoes an undo
    assert "nothing to undo" in capsys.readouterr().err
    with Project.open(project_file) as project:
        assert project.stats().labelled == 0


def test_classes_merge_and_undo(project_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["label", str(project_file), "img0.jpg", "walking"])
    main(["label", str(project_file), "img2.jpg", "running"])
    assert main(["classes", str(project_file), "merge", "walking", "running", "--into", "walking/running"]) == 0
    out = capsys.readouterr().out
    assert "1. walking/running" in out and "2 labels" in out
    assert main(["classes", str(project_file), "undo"]) == 0
    assert "split 'walking/running'" in capsys.readouterr().out
    assert main(["classes", str(project_file), "rename", "sitting", "seated"]) == 0
    with Project.open(project_file) as project:
        assert project.class_names() == ["walking", "running", "seated", "standing"]


def test_errors_name_the_file_and_cause(project_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["label", str(project_file), "img1.jpg", "flying"]) == 1
    assert "unknown class 'flying'" in capsys.readouterr().err
    not_a_project = tmp_path / "notes.txt"
    not_a_project.write_text("hello")
    assert main(["stats", str(not_a_project)]) == 1
    err = capsys.readouterr().err
    assert str(not_a_project) in err and "not a harapp project" in err
    assert not_a_project.read_text() == "hello"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "harapp 0.1.0" in capsys.readouterr().out
