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
from harapp.ml.label_quality import feature_dtype, review_labels, score_labelled
from harapp.ml.models import LinearHead
from harapp.ml.progress import Reporter
from tests.ml.conftest import draw_shapes, project_from_items

SMALL = TrainConfig(image_size=96, batch_size=16, device="cpu", views=("whole",))
"""Scoring with EfficientNet-Lite0 at 96 px on the whole photo: seconds on the generated shapes (at 64 px
the pretrained features no longer tell the small shapes apart reliably)."""


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


def _queue_project(tmp_path: Path) -> tuple[Project, list[int]]:
    """24 shapes, the last four unlabelled (the label-next queue)."""
    project, ids = _shapes_project(tmp_path, n=24)
    for image_id in ids[20:]:
        project.set_label(image_id, None, "human")
    return project, ids


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


def test_labelled_people_are_scored_and_held_out_with_their_photo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A labelled person shares its photo's whole view, so a fold that holds out an image holds out its people
    too: otherwise a person's label is judged by a probe that learned the same vector under the image's."""
    from harapp.ml import head as head_module

    project, ids = _shapes_project(tmp_path, n=24)
    people = {image_id: project.add_person(image_id, (2.0, 2.0, 30.0, 30.0)) for image_id in ids[:8]}
    for image_id, person_id in people.items():
        project.set_label(image_id, "standing", "human", person_id=person_id)
    seen: list[list[int]] = []
    original = head_module.stratified_folds

    def recording(targets, folds, seed, groups=None):  # type: ignore[no-untyped-def]
        assignment = original(targets, folds, seed, groups)
        assert groups is not None
        for image_id in set(groups.tolist()):
            assert len(set(assignment[groups == image_id].tolist())) == 1
        seen.append(groups.tolist())
        return assignment

    monkeypatch.setattr(head_module, "stratified_folds", recording)
    review = review_labels(project, SMALL)
    person_rows = [r for r in review.rows if r.person_id is not None]
    assert {(r.image_id, r.person_id) for r in person_rows} == set(people.items())
    assert all(r.given_class == "standing" for r in person_rows)
    assert seen and any(len(set(g)) < len(g) for g in seen)  # images with a labelled person: two rows, one group
    project.close()


def test_the_second_round_starts_again_from_a_clip_like_head() -> None:
    """A CLIP head starts at its zero-shot classifier on raw features; the second round must start there too,
    re-expressed for the standardised inputs, or a strong penalty pulls it towards a different classifier."""
    g = torch.Generator().manual_seed(4)
    truth = torch.arange(4).repeat(40)
    features = 5.0 + 3.0 * (torch.randn(4, 12, generator=g)[truth] + torch.randn(len(truth), 12, generator=g))
    start = LinearHead(12, 4)
    with torch.no_grad():
        start.linear.weight.copy_(torch.randn(4, 12, generator=g))
    head = LinearHead(12, 4)
    head.load_state_dict(start.state_dict())
    score_labelled(head, features, truth, Reporter(None, None), grid=(1e5,))
    with torch.no_grad():
        moved = head.linear((features - head.shift) / head.scale) - start.linear(features)
        spread = float(start.linear(features).std())
    # The penalty keeps the weights at the start: the logits differ by the fitted biases alone.
    assert float(moved.std(0).max()) < 1e-2 * spread


def test_scores_use_the_models_input_size_so_its_cached_vectors_serve_both() -> None:
    from harapp.ml.label_quality import scoring_config

    config = TrainConfig(image_size=96, batch_size=8, loader_workers=0, views=("whole", "pose"), device="cpu")
    scorer = scoring_config(config)
    assert (scorer.image_size, scorer.batch_size, scorer.loader_workers) == (96, 8, 0)
    assert scorer.views == ("whole", "pose") and scorer.mode == "linear-probe"
    assert scoring_config(None).model_kind == TrainConfig().model_kind


def test_warm_up_loads_the_scoring_library() -> None:
    import sys

    from harapp.ml.label_quality import warm_up

    warm_up()
    assert "cleanlab.rank" in sys.modules


def test_a_class_only_people_carry_is_never_held_out_when_folds_follow_photos() -> None:
    from harapp.ml.head import stratified_folds

    # Six photos of class 0 and six of class 1; photo 12 holds two people of class 2 (too few for five folds).
    targets = torch.tensor([0] * 6 + [1] * 6 + [2, 2])
    groups = torch.tensor(list(range(12)) + [3, 3])  # the class-2 people are on photo 3, a class-0 photo
    folds = stratified_folds(targets, 5, seed=0, groups=groups)
    assert folds[12] == folds[13] == folds[3] == -1  # never held out: a fold without class 2 could not learn it
    for a, b in zip(folds.tolist(), groups.tolist(), strict=True):
        assert a == folds[groups.tolist().index(b)]  # a photo's rows share a fold
    assert (folds[:12] >= 0).sum() == 11


def test_scores_of_many_vectors_in_blocks_and_float16_match_the_scores_on_one_matrix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 100k images the vectors are float16 and the probes work through them a block at a time, the second
    round on the kept rows without copying them: the same scores as on one float32 matrix, up to rounding."""
    from harapp.ml import models

    g = torch.Generator().manual_seed(2)
    truth = torch.arange(4).repeat(150)
    features = 1.0 + 2.0 * torch.randn(4, 40, generator=g)[truth] + 3.0 * torch.randn(len(truth), 40, generator=g)
    noisy = truth.clone()
    noisy[:60] = (noisy[:60] + 1) % 4
    features = features.half().float()  # the values float16 can hold: the two runs see the same vectors
    one_head = LinearHead(40, 4)
    one, one_probs, one_scores = score_labelled(one_head, features, noisy, Reporter(None, None))
    monkeypatch.setattr(models, "BLOCK_VALUES", 50 * 40)
    head = LinearHead(40, 4)
    fit, probs, scores = score_labelled(head, features.half(), noisy, Reporter(None, None))
    assert (fit.l2, fit.folds, len(fit.oof_probabilities)) == (one.l2, one.folds, len(one.oof_probabilities))
    assert fit.folds == 5 and len(fit.oof_probabilities) == 540  # the second round: 90% kept
    assert probs.shape == one_probs.shape and torch.allclose(probs, one_probs, atol=1e-4)
    assert np.allclose(scores, one_scores, atol=1e-4)
    assert torch.allclose(head.linear.weight, one_head.linear.weight, atol=1e-4)
    assert torch.allclose(head.temperature, one_head.temperature, rtol=1e-3)  # its own solver


def test_scoring_holds_the_features_of_big_projects_as_float16() -> None:
    assert feature_dtype(5_000, 2626) == torch.float32  # a few thousand photos: the scores they always had
    assert feature_dtype(110_000, 2626) == torch.float16  # 100k images: 0.6 GB instead of 1.2 GB


def test_the_fit_holds_only_the_labelled_vectors_and_the_unlabelled_are_read_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 100k images the unlabelled images' vectors, held through the fit, were a tenth of the memory budget."""
    from harapp.ml import label_quality

    project, ids = _queue_project(tmp_path)
    calls: list[tuple[str, int]] = []
    read, fit = label_quality.cached_features, label_quality.score_labelled

    def reading(built, config, items, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(("read", len(items)))
        return read(built, config, items, *args, **kwargs)

    def fitting(head, features, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(("fit", len(features)))
        return fit(head, features, *args, **kwargs)

    monkeypatch.setattr(label_quality, "cached_features", reading)
    monkeypatch.setattr(label_quality, "score_labelled", fitting)
    review = review_labels(project, SMALL)
    assert calls == [("read", 20), ("fit", 20), ("read", 4)]
    assert sorted(r.image_id for r in review.queue()) == ids[20:]
    project.close()


def test_a_review_that_finds_every_vector_cached_never_builds_the_backbone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 100k images, timm and torchvision (imported to build it) were a fifth of the review's memory."""
    import subprocess
    import sys

    from harapp.ml import cnn_models

    project, ids = _queue_project(tmp_path)
    builds: list[int] = []
    monkeypatch.setattr(cnn_models, "_can_share_frozen", lambda: True)  # a GPU machine too counts the builds here
    frozen = cnn_models._frozen_lite0
    monkeypatch.setattr(cnn_models, "_frozen_lite0", lambda: builds.append(1) or frozen())
    first = review_labels(project, SMALL)
    assert builds == [1]  # the vectors had to be computed once
    again = review_labels(project, SMALL, store=False)
    assert builds == [1]
    assert again.rows == first.rows
    path = project.path
    project.close()
    # A fresh process, as `harapp review` is: the cached vectors are all it reads.
    script = (
        "import sys; from pathlib import Path; from harapp.core.store import Project;"
        "from harapp.ml.label_quality import review_labels; from harapp.ml.config import TrainConfig;"
        f"p = Project.open(Path({str(path)!r}));"
        "r = review_labels(p, TrainConfig(image_size=96, batch_size=16, device='cpu', views=('whole',)), store=False);"
        "print(len(r.rows), 'timm' in sys.modules, 'torchvision' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.split() == ["24", "False", "False"]
