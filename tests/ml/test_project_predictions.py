"""One prediction path for a whole project: stored by training, from cached features for probes, and the
same numbers the held-out metrics and the Predict panel show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
    args = ["--image-size", "64", "--batch-size", "16", "--device", "cpu", "--views", "whole"]
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
