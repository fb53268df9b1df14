"""Guided curation's scores: flipped labels rank first, scores survive reopening, odd projects get messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harapp.core.errors import HarappError
from harapp.core.store import Project
from harapp.core.types import DEFAULT_CLASSES
from harapp.ml.config import TrainConfig
from harapp.ml.label_quality import review_labels, score_labelled
from harapp.ml.models import LinearHead
from harapp.ml.progress import Reporter
from tests.ml.conftest import draw_shapes, project_from_items

SMALL = TrainConfig(image_size=64, batch_size=16, device="cpu", views=("whole",))
"""Scoring with EfficientNet-Lite0 at 64 px on the whole photo: seconds on the generated shapes."""


def test_flipped_labels_rank_first_on_synthetic_features() -> None:
    g = torch.Generator().manual_seed(0)
    centres = 3 * torch.randn(4, 16, generator=g)
    truth = torch.arange(4).repeat(50)
    features = centres[truth] + torch.randn(len(truth), 16, generator=g)
    noisy = truth.clone()
    flip_at = torch.randperm(len(truth), generator=g)[:20]
    noisy[flip_at] = (truth[flip_at] + 1 + torch.randint(0, 3, (20,), generator=g)) % 4
    _, oof, scores = score_labelled(LinearHead(16, 4), features, noisy, Reporter(None, None))
    first = set(np.argsort(scores, kind="stable")[:20].tolist())
    assert len(first & set(flip_at.tolist())) >= 18
    # The suggestion of a flipped label is the original one.
    suggested = oof.argmax(1)
    assert (suggested[flip_at] == truth[flip_at]).float().mean() >= 0.9


def _shapes_project(tmp_path: Path, n: int = 40) -> tuple[Project, list[int]]:
    root = tmp_path / "imgs"
    items = draw_shapes(root, n)
    project = project_from_items(tmp_path / "p.harapp", items, root)
    assert isinstance(project, Project)
    return project, project.image_ids()


def test_review_finds_wrong_labels_stores_them_and_marks_them_stale(tmp_path: Path) -> None:
    project, ids = _shapes_project(tmp_path)
    wrong = {ids[0]: "sitting", ids[5]: "walking", ids[10]: "standing"}  # true: walking, running, sitting
    project.set_labels(list(wrong.items()), source="human")
    for image_id in ids[36:]:
        project.set_label(image_id, None, "human")  # four unlabelled images for the label-next queue
    revision = project.label_revision()
    review = review_labels(project, SMALL)
    assert project.label_revision() == revision  # scoring never changes a label
    ranked = review.review()
    assert {r.image_id for r in ranked[:3]} == set(wrong)
    assert all(r.likely_wrong and r.given_class == wrong[r.image_id] for r in ranked[:3])
    assert [r.suggested_class for r in ranked[:3]] == [
        DEFAULT_CLASSES[(i - 1) % 4] for i in (r.image_id for r in ranked[:3])
    ]
    queue = review.queue()
    assert {r.image_id for r in queue} == set(ids[36:])
    assert [r.score for r in queue] == sorted(r.score for r in queue)
    assert review.folds == 5 and "out-of-fold" in review.scorer and review.label_revision == revision
    path = project.path
    project.close()

    reopened = Project.open(path)
    stored = reopened.label_quality()
    assert sorted(stored, key=lambda r: (r.queue, r.image_id)) == sorted(
        review.rows, key=lambda r: (r.queue, r.image_id)
    )
    assert reopened.stale_label_quality(stored) == set()
    reopened.set_label(ranked[0].image_id, ranked[0].suggested_class, "human")  # the user accepts a suggestion
    reopened.set_label(queue[0].image_id, "running", "human")  # and labels the first image of the queue
    assert reopened.stale_label_quality(reopened.label_quality()) == {
        (ranked[0].image_id, None),
        (queue[0].image_id, None),
    }
    reopened.close()


def test_small_odd_projects_get_a_message_or_a_stated_fallback(tmp_path: Path) -> None:
    project, ids = _shapes_project(tmp_path, n=8)
    for image_id in ids[1:]:
        project.set_label(image_id, "walking", "human")
    project.set_label(ids[0], None, "human")
    with pytest.raises(HarappError, match="only labelled images of class walking"):
        review_labels(project, SMALL)
    project.set_label(ids[0], "running", "human")  # running: a single image, sitting and standing: none
    review = review_labels(project, SMALL)
    assert "never held out" in review.note and len(review.review()) == 8
    for image_id in ids[2:]:
        project.set_label(image_id, None, "human")
    project.set_label(ids[1], "walking", "human")
    review = review_labels(project, SMALL)  # two labelled images: fewer than the folds
    assert review.folds == 0 and "too few labelled images" in review.note and len(review.review()) == 2
    for image_id in ids:
        project.set_label(image_id, None, "human")
    with pytest.raises(HarappError, match="no labelled images"):
        review_labels(project, SMALL)
    project.close()


def test_photos_gone_from_disk_are_left_out_and_counted(tmp_path: Path) -> None:
    project, ids = _shapes_project(tmp_path, n=24)
    gone = [project.image(ids[3]).path, project.image(ids[20]).path]
    for path in gone:
        path.unlink()
    review = review_labels(project, SMALL)
    assert set(review.missing) == {ids[3], ids[20]}
    assert "2 image(s) left out: their photo is missing" in review.note
    assert {r.image_id for r in review.rows} == set(ids) - {ids[3], ids[20]}
    project.close()
