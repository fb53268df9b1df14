from __future__ import annotations

from pathlib import Path

import pytest

from harapp.core.errors import LabelError
from tests.core.helpers import project_with_images


def test_add_and_rename_keep_labels(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking")
    project.add_class("lying")
    assert project.class_names()[-1] == "lying"
    project.rename_class("walking", "strolling")
    assert project.image(ids[0]).label.class_name == "strolling"
    # Renaming keeps the caption concepts, so caption votes for "walking" still reach the class.
    assert next(c for c in project.classes() if c.name == "strolling").concepts == ("walking",)
    with pytest.raises(LabelError, match="already exists"):
        project.rename_class("strolling", "sitting")
    assert "renamed" in project.undo_class_op()
    assert project.image(ids[0]).label.class_name == "walking"


def test_merge_walking_and_running_then_undo(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking", "caption")
    project.set_label(ids[1], "running", "human")
    project.set_label(ids[2], "sitting", "human")
    revision = project.label_revision()
    project.merge_classes(["walking", "running"], "walking/running")
    assert project.class_names() == ["walking/running", "sitting", "standing"]
    assert [project.image(i).label.class_name for i in ids[:3]] == ["walking/running", "walking/running", "sitting"]
    merged = next(c for c in project.classes() if c.name == "walking/running")
    assert merged.concepts == ("walking", "running")
    assert project.label_revision() > revision
    assert any(h.reason == "merge" for h in project.history(ids[0]))
    project.undo_class_op()
    assert project.class_names() == ["walking", "running", "sitting", "standing"]
    assert [project.image(i).label.class_name for i in ids[:3]] == ["walking", "running", "sitting"]
    assert project.image(ids[0]).label.source == "caption"


def test_undo_merge_keeps_a_label_changed_after_the_merge(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "walking")
    project.set_label(ids[1], "running")
    project.merge_classes(["walking", "running"], "walking/running")
    project.set_label(ids[1], "standing")
    project.undo_class_op()
    assert project.image(ids[0]).label.class_name == "walking"
    assert project.image(ids[1]).label.class_name == "standing"


def test_merge_into_an_existing_class(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    project.set_label(ids[0], "running")
    project.merge_classes(["running", "walking"], "walking")
    assert project.class_names() == ["walking", "sitting", "standing"]
    assert project.image(ids[0]).label.class_name == "walking"
    project.undo_class_op()
    assert project.class_names() == ["walking", "running", "sitting", "standing"]
    assert project.image(ids[0]).label.class_name == "running"


def test_bad_class_operations(tmp_path: Path) -> None:
    project, ids = project_with_images(tmp_path)
    with pytest.raises(LabelError, match="there is no class change to undo"):
        project.undo_class_op()
    with pytest.raises(LabelError, match="unknown class 'flying'"):
        project.merge_classes(["walking", "flying"], "x")
    with pytest.raises(LabelError, match="empty"):
        project.add_class("   ")
    with pytest.raises(LabelError, match="already exists"):
        project.add_class("sitting")
    project.add_class("lying")
    project.set_label(ids[0], "lying")
    with pytest.raises(LabelError, match="already has labels"):
        project.undo_class_op()
    assert "lying" in project.class_names()
