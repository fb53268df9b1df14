from __future__ import annotations

import json
from pathlib import Path

from harapp.core import paths
from harapp.core.atomic import atomic_write_text


def test_folders_follow_the_environment(isolated_user_dirs: Path) -> None:
    assert paths.config_dir() == isolated_user_dirs / "config"
    assert paths.demo_project_path() == isolated_user_dirs / "data" / "demo" / "demo.harapp"
    assert paths.models_dir_for(Path("/x/y/coco.harapp")) == Path("/x/y/coco.models")


def test_settings_round_trip_and_recent_projects(tmp_path: Path) -> None:
    assert paths.load_settings() == paths.Settings()
    for name in ("a", "b", "a"):
        paths.remember_project(tmp_path / f"{name}.harapp")
    settings = paths.load_settings()
    assert settings.recent_projects == (str(tmp_path / "a.harapp"), str(tmp_path / "b.harapp"))
    # The file is plain JSON a person can read and edit.
    data = json.loads(paths.settings_path().read_text())
    assert data["recent_projects"][0].endswith("a.harapp")


def test_a_broken_settings_file_falls_back_to_defaults(tmp_path: Path) -> None:
    paths.settings_path().write_text("{not json")
    assert paths.load_settings() == paths.Settings()
    paths.settings_path().write_text(json.dumps({"device": "cpu", "unknown_key": 1}))
    assert paths.load_settings().device == "cpu"


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")

    class Boom(Exception):
        pass

    try:
        from harapp.core.atomic import atomic_writer

        with atomic_writer(target) as handle:
            handle.write("half of the new")
            raise Boom
    except Boom:
        pass
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_each_training_run_gets_its_own_checkpoint_file_beside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "photos.harapp"
    first = paths.new_checkpoint_path(project, "clip", "linear-probe")
    assert first.parent == tmp_path / "photos.models" and first.suffix == ".pt"
    assert first.name.startswith("clip-linear-probe-")
    # Two runs started in the same second, neither file written yet (that happens when training ends).
    assert paths.new_checkpoint_path(project, "clip", "linear-probe") != first
