"""Reads built for 100k-image projects give what the per-image reads give: columns, snapshot, feature matrix."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from harapp.core.store import Project
from harapp.core.store.columns import NO_CODE
from harapp.core.types import SOURCES, LabelledItem, LabelSnapshot, StoredPrediction

CLASSES = ("walking", "running", "sitting", "standing")


def _mixed_project(folder: Path, n: int = 60, seed: int = 0) -> tuple[Project, list[int]]:
    """Two import folders, every kind of label and vote, persons on labelled and unlabelled images, person
    labels, odd captions (quotes, non-ASCII, a newline), and a deleted image."""
    rng = random.Random(seed)
    project = Project.create(folder / "mixed.harapp", classes=CLASSES)
    roots = [folder / "a", folder / "b b"]
    sources = [project.add_source("coco", root) for root in roots]
    ids = []
    for i in range(n):
        captions = [f'A "person" {CLASSES[i % 4]} café {i}', "Kelvin \u212a and\nnewline"][: 1 + i % 2]
        votes = {} if i % 5 == 0 else {CLASSES[i % 4]: i % 3, CLASSES[(i + 1) % 4]: 1}
        ids.append(project.upsert_image(sources[i % 2], f"sub/img{i:03d}.jpg", 64, 48, i, captions, votes))
    for i, image_id in enumerate(ids):
        for k in range(rng.randrange(3)):
            person = project.add_person(image_id, (float(k), 2.0 * k, 10.5, 20.0 + i))
            if rng.random() < 0.3:
                project.set_label(image_id, rng.choice(CLASSES), rng.choice(SOURCES), person_id=person)
        if rng.random() < 0.7:
            project.set_label(image_id, rng.choice(CLASSES), rng.choice(SOURCES))
    project._conn.execute("DELETE FROM images WHERE id = ?", (ids.pop(7),))  # an image gone since
    return project, ids


def test_image_columns_match_the_image_records(tmp_path: Path) -> None:
    project, ids = _mixed_project(tmp_path)
    columns = project.image_columns()
    assert columns.ids.tolist() == ids == project.image_ids()
    assert list(columns.class_names) == project.class_names()
    for k, record in enumerate(project.images()):
        assert Path(columns.roots[columns.root_index[k]]) / columns.rel_paths[k] == record.path
        assert tuple(json.loads(columns.captions_json[k])) == record.captions
        label = record.label
        assert columns.labels[k] == (columns.class_names.index(label.class_name) if label else NO_CODE)
        assert columns.sources[k] == (SOURCES.index(label.source) if label else NO_CODE)
        assert bool(columns.uncertain[k]) == record.uncertain
    some = project.image_columns([ids[5], ids[2], 999_999, ids[5]])
    assert some.ids.tolist() == [ids[2], ids[5]]
    assert some.rel_paths == [columns.rel_paths[2], columns.rel_paths[5]]
    assert len(project.image_columns([])) == 0


def test_paths_and_person_boxes_match_the_records(tmp_path: Path) -> None:
    project, ids = _mixed_project(tmp_path)
    assert project.image_columns().paths() == [record.path for record in project.images()]
    boxes = project.person_boxes()
    assert boxes == {i: tuple(p.box for p in project.persons(i)) for i in ids if project.persons(i)}
    assert any(len(b) > 1 for b in boxes.values())


def test_prediction_columns_match_the_predictions(tmp_path: Path) -> None:
    project, ids = _mixed_project(tmp_path)
    model = project.register_model("m", "cnn-scratch", "scratch", tmp_path / "m.pt", 1, {}, {})
    assert len(project.prediction_columns(model)) == 0
    stored = {
        image_id: StoredPrediction(CLASSES[i % 3], 0.25 + i / 1000, {CLASSES[i % 3]: 0.25 + i / 1000, "other": 0.1})
        for i, image_id in enumerate(ids[::2])
    }
    project.put_predictions(model, stored)
    columns = project.prediction_columns(model)
    assert columns.ids.tolist() == sorted(stored)
    for k, image_id in enumerate(columns.ids.tolist()):
        expected = project.predictions(model)[image_id]
        assert columns.class_names[columns.classes[k]] == expected.class_name
        assert columns.confidence[k] == expected.confidence
        assert json.loads(columns.probabilities_json[k]) == expected.probabilities


def _reference_snapshot(project: Project, include_sources: tuple[str, ...], person_level: bool) -> LabelSnapshot:
    """The snapshot as the per-image reads describe it."""
    names = tuple(project.class_names())
    items = []
    for record in project.images():
        persons = project.persons(record.id)
        if person_level:
            labels = project.person_labels(record.id)
            for person in persons:
                label = labels.get(person.id)
                if label is not None and label.source in include_sources:
                    item = LabelledItem(
                        record.id, record.path, names.index(label.class_name), (person.box,), record.width,
                        record.height, person.id,
                    )  # fmt: skip
                    items.append(item)
        elif record.label is not None and record.label.source in include_sources:
            boxes = tuple(p.box for p in persons)
            items.append(
                LabelledItem(
                    record.id, record.path, names.index(record.label.class_name), boxes, record.width, record.height
                )
            )
    return LabelSnapshot(names, tuple(items), project.label_revision(), project.path)


@pytest.mark.parametrize("person_level", [False, True])
@pytest.mark.parametrize("include_sources", [("caption", "human"), ("human",), SOURCES])
def test_snapshot_matches_the_per_image_reads(
    tmp_path: Path, person_level: bool, include_sources: tuple[str, ...]
) -> None:
    project, _ = _mixed_project(tmp_path)
    snapshot = project.snapshot(include_sources, person_level=person_level)
    assert snapshot == _reference_snapshot(project, include_sources, person_level)
    assert snapshot.items, "the mixed project has labels of every kind"


def test_embedding_matrix_puts_each_vector_in_its_row(tmp_path: Path) -> None:
    project, ids = _mixed_project(tmp_path)
    rng = np.random.default_rng(0)
    vectors = {image_id: rng.normal(size=5).astype(np.float32) for image_id in ids[:10]}
    project.put_embeddings("k", {i: v.tobytes() for i, v in vectors.items()})
    wanted = [ids[3], ids[20], ids[1], ids[3]]  # out of order, one without a vector, one twice
    matrix, found = project.embedding_matrix("k", wanted)
    assert matrix.dtype == np.float32 and matrix.shape == (4, 5)
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(matrix[[0, 2, 3]], np.stack([vectors[ids[3]], vectors[ids[1]], vectors[ids[3]]]))
    assert not matrix[1].any()
    blobs = project.get_embeddings("k", wanted)
    for row, image_id in enumerate(wanted):
        if image_id in blobs:
            np.testing.assert_array_equal(matrix[row], np.frombuffer(blobs[image_id], dtype=np.float32))
    half, _ = project.embedding_matrix("k", wanted, dtype=np.float16)
    assert half.dtype == np.float16 and np.allclose(half, matrix, atol=1e-2)
    empty, found = project.embedding_matrix("other key", wanted)
    assert empty.shape == (4, 0) and not found.any()
    project.put_embeddings("bad", {ids[0]: vectors[ids[0]].tobytes(), ids[1]: b"\x00" * 8})
    with pytest.raises(ValueError, match="differ in length"):
        project.embedding_matrix("bad", ids[:2])
