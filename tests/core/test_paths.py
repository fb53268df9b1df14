from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pytest

from harapp.core import paths
from harapp.core.atomic import atomic_write_text
from harapp.core.errors import HarappError


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


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "_warned", set())


WRONG_TYPES = [None, 5, 2.5, True, [1, 2], {"a": 1}, "text"]


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(paths.Settings)])
def test_a_key_of_the_wrong_type_falls_back_to_its_default_with_one_warning(
    key: str, fresh_warnings: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Every key, every wrong JSON type: that key's default, the other keys kept, one warning naming it."""
    default = getattr(paths.Settings(), key)
    for value in WRONG_TYPES:
        right = (float, int) if isinstance(default, float) else type(default)  # a whole number is a float too
        if isinstance(value, right) and not isinstance(value, bool):
            continue  # the right type for this key
        paths._warned.clear()
        caplog.clear()
        other = "device" if key != "device" else "clip_weights_file"
        paths.settings_path().write_text(json.dumps({key: value, other: "kept"}), encoding="utf-8")
        with caplog.at_level(logging.WARNING, logger="harapp.core.paths"):
            settings = paths.load_settings()
            paths.load_settings()  # read again, as the app does: still one warning
        assert getattr(settings, key) == default, (key, value)
        assert getattr(settings, other) == "kept"
        warnings = [r.getMessage() for r in caplog.records]
        assert len(warnings) == 1 and repr(key) in warnings[0] and "settings.json" in warnings[0], warnings


def test_a_whole_number_is_a_number_of_gigabytes(fresh_warnings: None) -> None:
    paths.settings_path().write_text(json.dumps({"decoded_cache_gb": 0}), encoding="utf-8")
    assert paths.load_settings().decoded_cache_gb == 0.0


def test_recent_projects_must_be_paths(fresh_warnings: None) -> None:
    paths.settings_path().write_text(json.dumps({"recent_projects": ["/a.harapp", 3]}), encoding="utf-8")
    assert paths.load_settings().recent_projects == ()
    paths.settings_path().write_text(json.dumps({"recent_projects": ["/a.harapp"]}), encoding="utf-8")
    assert paths.load_settings().recent_projects == ("/a.harapp",)


def test_weights_cache_dir_that_cannot_be_a_folder(tmp_path: Path, fresh_warnings: None) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    paths.settings_path().write_text(json.dumps({"weights_cache_dir": str(blocker / "w")}), encoding="utf-8")
    with pytest.raises(HarappError, match="weights_cache_dir") as info:
        paths.load_settings().weights_dir()
    assert "settings.json" in str(info.value)
    paths.settings_path().write_text(json.dumps({"weights_cache_dir": 5}), encoding="utf-8")
    assert paths.load_settings().weights_dir() == paths.cache_dir() / "weights"


@pytest.mark.parametrize("variable", ["HARAPP_CONFIG_DIR", "HARAPP_CACHE_DIR", "HARAPP_DATA_DIR"])
def test_a_harapp_folder_variable_naming_a_file(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_warnings: None
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv(variable, str(blocker))
    getter = {"HARAPP_CONFIG_DIR": paths.config_dir, "HARAPP_CACHE_DIR": paths.cache_dir}.get(variable, paths.data_dir)
    with pytest.raises(paths.UserDirError, match=f"{variable}=.*it is a file, not a folder"):
        getter()
    assert paths.load_settings() == paths.Settings()  # settings fall back to the defaults, with a warning
