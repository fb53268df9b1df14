"""One prediction path for a whole project: stored by training, from cached features for probes, and the
same numbers the held-out metrics and the Predict panel show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harapp.cli import main
from harapp.core.store import Project
from harapp.core.types import DEFAULT_CLASSES
from harapp.ml import decode as decode_module
from harapp.ml import people as people_module
from harapp.ml.config import TrainConfig
from harapp.ml.predictor import Predictor
from harapp.ml.project_predictions import predict_project
from harapp.ml.trainer import train
from tests.ml.conftest import draw_shapes, project_from_items

PROBE = TrainConfig(image_size=64, batch_size=16, device="cpu")


def _project(tmp_path: Path, n: int = 32, labelled: int = 28) -> Project:
    root = tmp_path / "imgs"
    items = draw_shapes(root, n)
    project = project_from_items(tmp_path / "p.harapp", items, root)
    assert isinstance(project, Project)
    for image_id in project.image_ids()[labelled:]:
        project.set_label(image_id, None, "human")
    return project


def test_training_stores_a_prediction_for_every_image_the_metrics_agree(tmp_path: Path) -> None:
    project = _project(tmp_path)
    result = train(PROBE, project.snapshot(), tmp_path / "m.pt", project=project)
    assert result.model_id is not None and result.predictions is not None and result.metrics is not None
    stored = project.predictions(result.model_id)
    assert set(stored) == set(project.image_ids())  # unlabelled images too
    # The confusion matrix's held-out predictions are the stored ones: the same path, the same numbers.
    for image_id, pred, probs in zip(
        result.metrics.test_image_ids, result.metrics.test_predictions, result.metrics.test_probabilities, strict=True
    ):
        assert stored[image_id].class_name == DEFAULT_CLASSES[pred]
        assert [stored[image_id].probabilities[c] for c in DEFAULT_CLASSES] == pytest.approx(probs, abs=1e-5)
    # ... and the Predict panel's pipeline gives them too, for a photo dropped from the project's folder.
    predictor = Predictor.from_checkpoint(tmp_path / "m.pt", device="cpu")
    image = project.image(result.metrics.test_image_ids[0])
    boxes = tuple(p.box for p in project.persons(image.id))
    dropped = predictor.predict(image.path, boxes)
    assert not isinstance(dropped, list)
    assert dropped.top_probability == pytest.approx(stored[image.id].confidence, abs=1e-5)
    project.close()


def test_repredicting_after_a_probe_retrain_decodes_no_photo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path)
    first = train(PROBE, project.snapshot(), tmp_path / "a.pt", project=project)
    assert first.predictions is not None
    ids = project.image_ids()
    project.set_labels([(ids[0], "running"), (ids[1], "sitting")], source="human")
    decoded: list[Path] = []
    real = decode_module.load_image

    def counting(path: Path, *args: object, **kwargs: object) -> object:
        decoded.append(Path(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(decode_module, "load_image", counting)
    monkeypatch.setattr(people_module, "load_image", counting)
    second = train(PROBE, project.snapshot(), tmp_path / "b.pt", project=project)
    assert second.model_id is not None and second.predictions is not None
    assert len(second.predictions.predictions) == len(ids)
    assert decoded == []  # retrain and re-prediction both came from the project's cache
    again = predict_project(tmp_path / "b.pt", project, second.model_id, device="cpu")
    assert decoded == [] and again.predictions == second.predictions.predictions
    project.close()


def test_missing_photos_get_no_prediction_and_are_counted(tmp_path: Path) -> None:
    project = _project(tmp_path, n=20, labelled=20)
    result = train(
        TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu"),
        project.snapshot(), tmp_path / "m.pt", project=project, predict_project_images=False,
    )  # fmt: skip
    assert result.model_id is not None and result.predictions is None
    ids = project.image_ids()
    project.image(ids[4]).path.unlink()
    project.image(ids[9]).path.write_bytes(b"not a photo any more")
    out = predict_project(tmp_path / "m.pt", project, result.model_id, device="cpu")
    assert set(out.unreadable) == {ids[4], ids[9]}
    assert set(out.predictions) == set(ids) - {ids[4], ids[9]} == set(project.predictions(result.model_id))
    project.close()


def test_train_review_and_next_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = _project(tmp_path, n=40, labelled=36)
    ids = project.image_ids()
    project.set_labels([(ids[2], "walking"), (ids[7], "running")], source="human")  # true: sitting, standing
    path = project.path
    project.close()
    args = ["--image-size", "96", "--batch-size", "16", "--device", "cpu", "--views", "whole"]
    assert main(["train", str(path), *args]) == 0
    out = capsys.readouterr().out
    assert "predictions stored for 40 images" in out and "label review:" in out
    with Project.open(path) as reopened:
        active = reopened.active_model()
        models = reopened.models()
        assert len(models) == 1 and len(reopened.predictions(models[0].id)) == 40
        assert active is not None and active.id == models[0].id

    assert main(["review", str(path), "--top", "5", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 5 and {r["image_id"] for r in rows[:2]} == {ids[2], ids[7]}
    assert rows[0]["file"].startswith("shape_") and rows[0]["source"] == "human" and rows[0]["likely_wrong"]
    assert [r["score"] for r in rows] == sorted(r["score"] for r in rows)
    assert main(["review", str(path), "--top", "3"]) == 0
    table = capsys.readouterr().out
    assert "suggested" in table and "shape_0002.png" in table

    assert main(["next", str(path), "--json"]) == 0
    queue = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["image_id"] for r in queue} == set(ids[36:])
    assert all(r["label"] is None and r["suggested"] in DEFAULT_CLASSES for r in queue)


def test_large_jpegs_get_the_same_numbers_from_the_cache_and_from_a_dropped_photo(tmp_path: Path) -> None:
    """A whole-and-person model decodes every pixel of a dropped photo once for both views, so its cached
    whole-view vectors must come from full decodes too, not from a JPEG's reduced-size draft."""
    root = tmp_path / "imgs"
    shapes = draw_shapes(root, 24, size=(640, 512))
    for it in shapes:  # a JPEG this large is drafted at 1/8 of its size when the short side needed is 73
        Image.open(it.path).save(it.path.with_suffix(".jpg"), quality=90)
        it.path.unlink()
    project = Project.create(tmp_path / "p.harapp")
    source = project.add_source("folder", root, {})
    for it in shapes:
        image_id = project.upsert_image(source, it.path.with_suffix(".jpg").name, it.width, it.height)
        project.set_label(image_id, DEFAULT_CLASSES[it.class_index], "human")
        x, y, w, h = it.person_boxes[0]
        project.add_person(image_id, (x - 40, y - 40, w + 80, h + 80))
    config = TrainConfig(image_size=64, batch_size=16, device="cpu", views=("whole", "person"))
    result = train(config, project.snapshot(), tmp_path / "m.pt", project=project)
    assert result.model_id is not None
    stored = project.predictions(result.model_id)
    predictor = Predictor.from_checkpoint(tmp_path / "m.pt", device="cpu")
    for image_id in project.image_ids()[:6]:
        image = project.image(image_id)
        dropped = predictor.predict(image.path, tuple(p.box for p in project.persons(image_id)))
        assert not isinstance(dropped, list) and dropped.person_source == "annotation"
        assert [dropped.probabilities[n] for n in range(len(DEFAULT_CLASSES))] == pytest.approx(
            [stored[image_id].probabilities[c] for c in DEFAULT_CLASSES], abs=1e-4
        )
    project.close()


def test_ctrl_c_during_the_label_review_keeps_the_trained_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from harapp.ml import label_quality
    from harapp.ml.errors import TrainingCancelled

    project = _project(tmp_path, n=24, labelled=24)
    path = project.path
    project.close()

    def interrupted(*args: object, **kwargs: object) -> None:
        raise TrainingCancelled()

    monkeypatch.setattr(label_quality, "review_labels", interrupted)
    assert main(["train", str(path), "--image-size", "64", "--device", "cpu", "--views", "whole"]) == 0
    captured = capsys.readouterr()
    assert "label review cancelled; the model is saved" in captured.err and "checkpoint:" in captured.out
    with Project.open(path) as reopened:
        assert len(reopened.models()) == 1 and reopened.active_model() is not None
