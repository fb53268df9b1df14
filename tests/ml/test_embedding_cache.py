"""Linear probe with a project: features are cached per image, so a retrain embeds only new images."""

from __future__ import annotations

from pathlib import Path

import pytest

from harapp.core.types import DEFAULT_CLASSES
from harapp.ml import embeddings
from harapp.ml.config import TrainConfig
from harapp.ml.trainer import train
from tests.ml.conftest import draw_shapes, project_from_items


@pytest.mark.parametrize("kind", ["efficientnet-lite0", "clip"])
def test_retrain_after_label_changes_embeds_only_new_images(
    kind: str, tmp_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "imgs"
    items = draw_shapes(root, 36)
    project = project_from_items(tmp_path / "p.harapp", items[:32], root)
    computed: list[int] = []
    original = embeddings.compute_features

    def counting(built, todo, *args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append(len(todo))
        return original(built, todo, *args, **kwargs)

    monkeypatch.setattr(embeddings, "compute_features", counting)
    config = TrainConfig(
        model_kind=kind, mode="linear-probe", image_size=64, epochs=3, batch_size=8, device="cpu",
        clip_model=tiny_clip, pretrained=kind != "clip",
    )  # fmt: skip
    first = train(config, project.snapshot(), tmp_path / "a.pt", project=project)
    assert computed == [32]
    assert first.model_id is not None
    record = {m.id: m for m in project.models()}[first.model_id]
    assert record.kind == kind and record.mode == "linear-probe"
    assert record.metrics["accuracy"] == first.metrics.accuracy
    assert record.label_revision == project.label_revision()

    # Correct three labels and add four new images.
    ids = project.image_ids()
    project.set_labels([(ids[0], "running"), (ids[1], "sitting"), (ids[2], "standing")], source="human")
    source = project.add_source("folder", root, {})
    for it in items[32:]:
        image_id = project.upsert_image(source, it.path.name, it.width, it.height)
        project.set_label(image_id, DEFAULT_CLASSES[it.class_index], "human")
    snapshot = project.snapshot()
    assert len(snapshot.items) == 36
    second = train(config, snapshot, tmp_path / "b.pt", project=project)
    assert computed == [32, 4]
    assert second.history[-1]["embedded_images"] == 4
    project.close()


def test_model_key_depends_on_what_changes_features(tiny_clip: str) -> None:
    from harapp.ml.models import build_model

    base = TrainConfig(model_kind="efficientnet-lite0", image_size=64)
    built = build_model(base, DEFAULT_CLASSES)
    key = embeddings.model_key(base, built)
    assert key == embeddings.model_key(TrainConfig(model_kind="efficientnet-lite0", image_size=64, lr=0.1), built)
    bigger = TrainConfig(model_kind="efficientnet-lite0", image_size=96)
    assert key != embeddings.model_key(bigger, build_model(bigger, DEFAULT_CLASSES))
    assert key != embeddings.model_key(
        TrainConfig(model_kind="efficientnet-lite0", image_size=64, person_crop=True), built
    )


def test_linear_probe_fit_reports_the_solution_and_a_forward_moving_bar() -> None:
    import torch

    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter, TrainProgress

    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])
    labels = torch.arange(3).repeat(40)
    features = centres[labels] + 0.3 * torch.randn(len(labels), 2, generator=generator)
    head = LinearHead(2, 3)
    with torch.no_grad():
        head.linear.weight.fill_(0.0)
        head.linear.bias.fill_(0.0)
    reports: list[TrainProgress] = []
    history = embeddings.train_head(
        head, features[:90], labels[:90], features[90:], labels[90:], None, Reporter(reports.append, None, 1e9)
    )
    # Zero weights start at log(3) ~ 1.1; the history must hold the loss at the solution, far below that.
    assert history[-1]["loss"] < 0.5
    assert history[-1]["val_accuracy"] == 1.0
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The refit on train + val restarts from the initial weights: its losses are not drawn as a jump.
    assert all(r.loss is None for r in reports if 0.5 < r.fraction < 1.0)
    assert reports[-1].loss == history[-1]["loss"]
