"""Linear probe with a project: features are cached per image, so a retrain embeds only new images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from harapp.core.types import DEFAULT_CLASSES
from harapp.ml import embeddings
from harapp.ml.config import TrainConfig
from harapp.ml.models import build_model
from harapp.ml.people import NOBODY, PersonInput, resolve_people
from harapp.ml.progress import Reporter
from harapp.ml.trainer import train
from tests.ml.conftest import draw_shapes, project_from_items

CPU = torch.device("cpu")


@pytest.mark.parametrize("kind", ["efficientnet-lite0", "clip"])
def test_retrain_after_label_changes_embeds_only_new_images(
    kind: str, tmp_path: Path, tiny_clip: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "imgs"
    items = draw_shapes(root, 36)
    project = project_from_items(tmp_path / "p.harapp", items[:32], root)
    computed: list[tuple[str, int]] = []
    original = embeddings.compute_view_features

    def counting(built, todo, people, view, *args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append((view, len(todo)))
        return original(built, todo, people, view, *args, **kwargs)

    monkeypatch.setattr(embeddings, "compute_view_features", counting)
    config = TrainConfig(
        model_kind=kind, mode="linear-probe", image_size=64, epochs=3, batch_size=8, device="cpu",
        clip_model=tiny_clip, pretrained=kind != "clip",
    )  # fmt: skip
    first = train(config, project.snapshot(), tmp_path / "a.pt", project=project)
    # The images carry no person boxes in the project (and the pose model finds nobody in shapes), so the
    # person view falls back to the whole photo and reuses its vector.
    assert computed == [("whole", 32)]
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
    assert computed == [("whole", 32), ("whole", 4)]
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
    assert key != embeddings.model_key(base, built, "person")


def test_person_vectors_are_cached_per_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "imgs"
    items = draw_shapes(root, 12)
    project = project_from_items(tmp_path / "p.harapp", items, root)
    snapshot = project.snapshot()
    with_boxes = [
        dataclasses.replace(it, person_boxes=src.person_boxes) for it, src in zip(snapshot.items, items, strict=True)
    ]
    computed: list[tuple[str, int]] = []
    original = embeddings.compute_view_features

    def counting(built, todo, people, view, *args, **kwargs):  # type: ignore[no-untyped-def]
        computed.append((view, len(todo)))
        return original(built, todo, people, view, *args, **kwargs)

    monkeypatch.setattr(embeddings, "compute_view_features", counting)
    config = TrainConfig(image_size=64, batch_size=8, device="cpu", views=("whole", "person"))
    built = build_model(config, DEFAULT_CLASSES)
    people = resolve_people(with_boxes, config.views, project, Reporter(None, None))
    assert all(p.source == "annotation" for p in people)
    first, n_first = embeddings.cached_features(built, config, with_boxes, CPU, Reporter(None, None), project, people)
    assert computed == [("whole", 12), ("person", 12)] and n_first == 24
    again, n_again = embeddings.cached_features(built, config, with_boxes, CPU, Reporter(None, None), project, people)
    assert n_again == 0 and torch.equal(first, again)
    # Another box for one image misses the cache for that image only, and gives another vector.
    moved = [dataclasses.replace(with_boxes[0], person_boxes=((2.0, 2.0, 40.0, 40.0),)), *with_boxes[1:]]
    moved_people = resolve_people(moved, config.views, project, Reporter(None, None))
    third, n_third = embeddings.cached_features(built, config, moved, CPU, Reporter(None, None), project, moved_people)
    assert n_third == 1 and computed[-1] == ("person", 1)
    dim = built.model.backbone_dim
    assert torch.equal(third[0, :dim], first[0, :dim]) and not torch.equal(third[0, dim:], first[0, dim:])
    assert torch.equal(third[1:], first[1:])
    project.close()


def test_features_are_read_a_chunk_at_a_time_into_one_matrix_of_the_asked_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cached vectors go straight into the features, a chunk of images at a time (at 100k images, reading them
    all first held them several times over), and the features may be float16. Two items of one image (the
    image and one of its people), and rows without a person, whose person view is the whole photo's vector."""
    root = tmp_path / "imgs"
    items = draw_shapes(root, 10)
    project = project_from_items(tmp_path / "p.harapp", items, root)
    with_boxes = [
        dataclasses.replace(it, person_boxes=src.person_boxes)
        for it, src in zip(project.snapshot().items, items, strict=True)
    ]
    todo = [*with_boxes, dataclasses.replace(with_boxes[3], person_boxes=((2.0, 2.0, 40.0, 40.0),), person_id=1)]
    people = [PersonInput(it.person_boxes[0], "annotation", None) if n % 3 else NOBODY for n, it in enumerate(todo)]
    config = TrainConfig(image_size=64, batch_size=8, device="cpu", views=("whole", "person"))
    built = build_model(config, DEFAULT_CLASSES)

    def features(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, int]:
        return embeddings.cached_features(built, config, todo, CPU, Reporter(None, None), project, people, dtype)

    cold, computed = features()
    assert computed == 10 + 7  # every image's whole view, the person view of the 7 rows with a person
    monkeypatch.setattr(embeddings, "CHUNK_IMAGES", 3)
    warm, again = features()
    assert again == 0 and torch.equal(warm, cold)
    half, _ = features(torch.float16)
    assert half.dtype == torch.float16 and torch.equal(half, cold.half())
    dim = built.model.backbone_dim
    nobody = [n for n, p in enumerate(people) if p.box is None]
    assert torch.equal(cold[nobody, dim:], cold[nobody, :dim]) and not torch.equal(cold[10, dim:], cold[3, dim:])
    assert torch.equal(cold[10, :dim], cold[3, :dim])  # one image, one whole view
    project.close()
