"""Refreshing after corrections: the active probe retrains in place, badges and scores follow the labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from harapp.core.store import Project
from harapp.ml.config import TrainConfig
from harapp.ml.curation import refresh_after_corrections
from harapp.ml.trainer import TrainResult, train
from tests.ml.conftest import draw_shapes, project_from_items


def _project(tmp_path: Path) -> Project:
    root = tmp_path / "imgs"
    project = project_from_items(tmp_path / "p.harapp", draw_shapes(root, 32), root)
    assert isinstance(project, Project)
    return project


def _trained(tmp_path: Path) -> tuple[Project, TrainResult]:
    """The shapes project with an active linear probe, as after a first training."""
    project = _project(tmp_path)
    config = TrainConfig(image_size=64, batch_size=16, device="cpu", views=("whole",))
    first = train(config, project.snapshot(), tmp_path / "m.pt", project=project)
    assert first.model_id is not None
    project.set_active_model(first.model_id)
    return project, first


def test_a_probe_retrains_in_place_and_its_superseded_refresh_file_goes(tmp_path: Path) -> None:
    project, first = _trained(tmp_path)
    ids = project.image_ids()
    project.set_label(ids[0], "standing", "human")
    refresh = refresh_after_corrections(project, device="cpu")
    assert refresh.retrained and refresh.model_id == first.model_id and refresh.predictions == 32
    models = project.models()
    assert len(models) == 1 and models[0].label_revision == project.label_revision()
    assert "refresh" in models[0].path.name and (tmp_path / "m.pt").is_file()  # the person's own file stays
    assert refresh.review is not None and project.label_quality()
    assert project.predictions(first.model_id)[ids[0]].class_name  # badges come from the retrained model
    first_refresh = models[0].path
    project.set_label(ids[1], "sitting", "human")
    again = refresh_after_corrections(project, device="cpu")
    assert again.retrained and not first_refresh.exists() and project.models()[0].path.is_file()
    unchanged = refresh_after_corrections(project, device="cpu")  # nothing changed: scores only
    assert not unchanged.retrained and unchanged.review is not None
    project.close()


def test_a_fine_tuned_model_is_left_alone_and_the_scores_still_refresh(tmp_path: Path) -> None:
    project = _project(tmp_path)
    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=16, device="cpu",
        views=("whole",),
    )  # fmt: skip
    first = train(config, project.snapshot(), tmp_path / "m.pt", project=project)
    assert first.model_id is not None
    project.set_active_model(first.model_id)
    project.set_label(project.image_ids()[0], "running", "human")
    refresh = refresh_after_corrections(project, device="cpu")
    assert not refresh.retrained and "retrains only when you ask" in refresh.note
    assert refresh.review is not None and refresh.review.label_revision == project.label_revision()
    assert project.models()[0].path == tmp_path / "m.pt"
    project.close()


def test_a_copied_project_never_deletes_the_originals_checkpoints(tmp_path: Path) -> None:
    import shutil

    project, first = _trained(tmp_path)
    project.set_label(project.image_ids()[0], "standing", "human")
    assert refresh_after_corrections(project, device="cpu").retrained
    original_file = project.models()[0].path
    project.close()
    copy_dir = tmp_path / "elsewhere"
    copy_dir.mkdir()
    shutil.copy(tmp_path / "p.harapp", copy_dir / "p.harapp")
    copy = Project.open(copy_dir / "p.harapp")
    copy.set_label(copy.image_ids()[1], "sitting", "human")
    assert refresh_after_corrections(copy, device="cpu").retrained
    assert original_file.is_file(), "the original project's checkpoint is not the copy's to delete"
    assert copy.models()[0].path.parent == copy_dir / "p.models"
    copy.close()


def test_a_refresh_cancelled_while_predicting_is_completed_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harapp.ml import project_predictions
    from harapp.ml.errors import TrainingCancelled

    project, first = _trained(tmp_path)
    project.set_label(project.image_ids()[0], "standing", "human")
    monkeypatch.setattr(project_predictions, "CHUNK", 8)
    real_put = project.put_predictions
    chunks = [0]

    def cancelled_after_two_chunks(model_id, predictions):  # type: ignore[no-untyped-def]
        real_put(model_id, predictions)
        chunks[0] += 1
        if chunks[0] == 2:
            raise TrainingCancelled()

    monkeypatch.setattr(project, "put_predictions", cancelled_after_two_chunks)
    interrupted = refresh_after_corrections(project, device="cpu")
    assert interrupted.retrained and interrupted.predictions == 0
    # The retrained model replaced the old one, whose predictions went with it: 16 images still to predict.
    assert len(project.unpredicted_image_ids(first.model_id)) == 16
    monkeypatch.setattr(project, "put_predictions", real_put)
    completed = refresh_after_corrections(project, device="cpu")
    assert not completed.retrained and completed.predictions == 16
    assert project.unpredicted_image_ids(first.model_id) == []
    project.close()
