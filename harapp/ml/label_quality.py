"""Guided curation: which labels are probably wrong, what they should be, and which images to label next.

Every labelled image (and labelled person) gets class probabilities from a linear probe that never saw it
(k-fold on cached features: seconds, no photo decoded once the cache is warm); cleanlab turns them into a
label-quality score. Scoring a label with the model that learned it barely beats a random order; the
out-of-fold step is what makes the ranking useful, and a second round without the worst-looking labels
makes it better still (bench/README.md, "Label noise").
Unlabelled images (including those whose captions disagree) are queued by the margin between the probe's
two likeliest classes: a label helps most where the model is least sure.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch

from harapp.core.errors import HarappError
from harapp.core.types import LabelledItem, LabelQuality, LabelSnapshot
from harapp.ml.config import TrainConfig
from harapp.ml.device import resolve_device
from harapp.ml.embeddings import cached_features
from harapp.ml.head import L2_GRID, ProbeFit, fit_probe
from harapp.ml.kinds import KINDS, get_kind
from harapp.ml.models import BuiltModel, LinearHead, build_model, calibrated_probabilities
from harapp.ml.people import VectorStore, resolve_people
from harapp.ml.progress import Reporter, TrainProgress
from harapp.ml.views import describe_views

ScoreMethod = Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"]
SCORE_METHOD: ScoreMethod = "self_confidence"
"""cleanlab's ranking method; chosen on the label-noise benchmark (bench/label_noise_bench.py)."""
PRUNE_FRACTION = 0.1
"""Share of the labels that look worst, left out of the second round of scoring (see score_labelled)."""
FOLD_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Out-of-fold probabilities are averaged over these fold assignments: a label's score then depends less
on which images happened to share its fold (measured on the label-noise benchmark)."""
FLOAT16_ABOVE_BYTES = 256 << 20
"""Scoring holds the features as float16 where float32 would take more than this (25k vectors of 2,626
features): at 100k images torch and the scoring libraries take 0.8 GB of a 1.5 GB budget, and float32
features another 1.1 GB. float16's rounding (a 2,000th of each value) is far below what tells photos apart;
projects of a few thousand photos keep float32, and so exactly the scores they had."""


class ReviewProject(VectorStore, Protocol):
    """What scoring needs of a project."""

    def snapshot(self, include_sources: Sequence[str] = ..., person_level: bool = ...) -> LabelSnapshot: ...
    def image_ids(self) -> list[int]: ...
    def image_items(self, image_ids: Sequence[int] | None = None) -> list[LabelledItem]: ...
    def put_label_quality(self, rows: Sequence[LabelQuality]) -> None: ...


@dataclass(frozen=True)
class LabelReview:
    rows: tuple[LabelQuality, ...]
    scorer: str
    label_revision: int
    folds: int
    note: str
    """What the scores rest on when it is less than the usual (in-sample scores, missing photos)."""
    missing: tuple[int, ...]
    """Images left out because their photo is gone."""
    seconds: float

    def review(self) -> list[LabelQuality]:
        return sorted((r for r in self.rows if r.queue == "review"), key=lambda r: (r.score, r.image_id))

    def queue(self) -> list[LabelQuality]:
        return sorted((r for r in self.rows if r.queue == "next"), key=lambda r: (r.score, r.image_id))


def scoring_config(config: TrainConfig | None = None) -> TrainConfig:
    """The probe that scores labels: the given model's kind, views and input size on its frozen pretrained
    features (so a probe's cached vectors serve both), when that kind has pretrained features; else harapp's
    default model."""
    if config is not None:
        kind = get_kind(config.model_kind)
        if "linear-probe" in kind.modes and config.pretrained:
            return TrainConfig.for_kind(
                kind.name, "linear-probe", views=config.views, clip_model=config.clip_model,
                clip_pretrained=config.clip_pretrained, weights_path=config.weights_path, device=config.device,
                prompts=config.prompts, seed=config.seed, image_size=config.image_size, batch_size=config.batch_size,
                loader_workers=config.loader_workers,
            )  # fmt: skip
    return TrainConfig(device=config.device if config is not None else "auto")


def describe_scorer(config: TrainConfig, folds: int) -> str:
    how = f"{folds}-fold out-of-fold" if folds else "in-sample"
    return f"{KINDS[config.model_kind].label} ({describe_views(config.views)}) probe, {how}"


def review_labels(
    project: ReviewProject,
    config: TrainConfig | None = None,
    *,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
    reporter: Reporter | None = None,
    store: bool = True,
    method: ScoreMethod = SCORE_METHOD,
    fold_seeds: Sequence[int] = FOLD_SEEDS,
    l2: float | None = None,
) -> LabelReview:
    """Score every labelled image and person and queue the unlabelled images; store the rows unless told not
    to. l2: the probe's penalty strength when it is known already (else chosen by cross-validation). Raises
    HarappError when nothing can be scored (no labels, a single class)."""
    started = time.perf_counter()
    reporter = reporter or Reporter(progress, cancel)
    config = scoring_config(config).validate()
    images, persons = project.snapshot(), project.snapshot(person_level=True)
    names, revision = images.class_names, images.revision
    labelled, missing = _present([*images.items, *persons.items])  # images, then persons
    labelled_ids = {it.image_id for it in images.items}
    unlabelled_ids = [i for i in project.image_ids() if i not in labelled_ids]
    del images, persons, labelled_ids  # their items live on in `labelled` only as long as it does
    present = {it.class_index for it in labelled}
    if len(present) < 2:
        what = "no labelled images" if not labelled else f"only labelled images of class {names[next(iter(present))]}"
        raise HarappError(
            f"Cannot score labels: the project has {what} (with their photos on disk). Label images of at least "
            "two classes first."
        )
    # The backbone is built only if some vector is missing: most reviews read every vector from the cache.
    built = build_model(config, names, backbone=False)
    device = resolve_device(config.device)
    # Chosen for all the vectors scoring reads, as when they were read together (the unlabelled counted before
    # their photos are looked for): a project keeps its scores.
    dtype = feature_dtype(len(labelled) + len(unlabelled_ids), built.model.feature_dim)
    feats = _features(built, config, labelled, device, reporter, project, dtype)
    targets = torch.tensor([it.class_index for it in labelled], dtype=torch.long)
    groups = torch.tensor([it.image_id for it in labelled], dtype=torch.long)
    person_ids = torch.tensor([_NO_PERSON if it.person_id is None else it.person_id for it in labelled])
    # Past their vectors only these numbers of the items are needed: at 100k images their paths and boxes
    # (and an object per item) would hold 80 MB through the fit.
    del labelled
    head = built.model.head
    probe, oof, scores = score_labelled(
        head, feats, targets, reporter, method, fold_seeds, grid=(l2,) if l2 is not None else None, groups=groups,
    )  # fmt: skip
    del feats
    # The unlabelled images' items and vectors are read only now, after the fit: at 100k images they are a
    # fifth of the vectors, which the fit would otherwise hold all along (a tenth of the memory budget).
    unlabelled, gone = _present(project.image_items(unlabelled_ids))
    missing = sorted(set(missing) | set(gone))
    queue_probs = _queue_probabilities(head, _features(built, config, unlabelled, device, reporter, project, dtype))
    reporter.start_phase("scoring")
    scorer = describe_scorer(config, probe.folds)
    keys = _keys(groups, person_ids, targets)
    rows = [_review_row(k, names, oof[n], float(scores[n]), scorer, revision) for n, k in enumerate(keys)] + [
        _next_row(it, names, queue_probs[n], scorer, revision) for n, it in enumerate(unlabelled)
    ]
    note = probe.note
    if missing:
        note = "; ".join(filter(None, [note, f"{len(missing)} image(s) left out: their photo is missing"]))
    review = LabelReview(
        tuple(rows), scorer, revision, probe.folds, note, tuple(missing), time.perf_counter() - started
    )
    if store:
        project.put_label_quality(review.rows)
    reporter.step(epoch=1, epochs=1, step=1, steps=1, images=0)
    return review


_NO_PERSON = -1
"""The person id of an image-level label, where ids are held as numbers (a person's id is positive)."""


class _Key(NamedTuple):
    """What a labelled item's row needs of it."""

    image_id: int
    person_id: int | None
    class_index: int


def _keys(groups: torch.Tensor, person_ids: torch.Tensor, targets: torch.Tensor) -> list[_Key]:
    """Each labelled item's image, person and class, from the numbers the fit held."""
    return [
        _Key(image_id, None if person_id == _NO_PERSON else person_id, class_index)
        for image_id, person_id, class_index in zip(groups.tolist(), person_ids.tolist(), targets.tolist(), strict=True)
    ]


def _present(items: Sequence[LabelledItem]) -> tuple[list[LabelledItem], list[int]]:
    """The items whose photos are on disk, and the ids of the images whose photo is missing (one look at the
    disk per item: a review of 100k images makes 110k of them)."""
    present: list[LabelledItem] = []
    missing: set[int] = set()
    for item in items:
        if item.path.is_file():
            present.append(item)
        else:
            missing.add(item.image_id)
    return present, sorted(missing)


def _features(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    device: torch.device,
    reporter: Reporter,
    project: ReviewProject,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The head's input for each item (cached vectors read, missing ones computed and cached)."""
    people = resolve_people(items, config.views, project, reporter)
    feats, _ = cached_features(built, config, items, device, reporter, project, people, dtype)
    return feats  # the people go here: at 100k images their poses and boxes are a tenth of the budget


def _queue_probabilities(head: LinearHead, features: torch.Tensor) -> torch.Tensor:
    """The fitted probe's class probabilities for the unlabelled images' vectors."""
    return calibrated_probabilities(head.logits_of(features), head.temperature)


def feature_dtype(vectors: int, dim: int) -> torch.dtype:
    """How scoring holds this many feature vectors (see FLOAT16_ABOVE_BYTES)."""
    return torch.float16 if vectors * dim * 4 > FLOAT16_ABOVE_BYTES else torch.float32


def score_labelled(
    head: LinearHead,
    features: torch.Tensor,
    targets: torch.Tensor,
    reporter: Reporter,
    method: ScoreMethod = SCORE_METHOD,
    fold_seeds: Sequence[int] = FOLD_SEEDS,
    prune: float = PRUNE_FRACTION,
    grid: tuple[float, ...] | None = None,
    groups: torch.Tensor | None = None,
) -> tuple[ProbeFit, torch.Tensor, np.ndarray]:
    """Each labelled vector's out-of-fold class probabilities and cleanlab's label-quality score of it (low:
    the label is probably wrong); `head` ends fitted on the labels that look right, for the label-next queue.

    Two rounds: the first scores every label; the second leaves out the `prune` share that looks worst, so
    wrong labels no longer teach the models that judge the others, and scores everything again (the left-out
    vectors by a probe fitted on all the kept ones). The loss is not class-balanced here: a wrong label into
    a rare class should look as unlikely as it is. ``groups`` (each vector's image): an image and its people
    are always held out together. ``features`` may be float16: the probes convert a block of them at a time.
    """
    start_head = copy.deepcopy(head)
    first, probs = _out_of_fold(head, features, targets, reporter, fold_seeds, grid, groups=groups)
    if prune <= 0 or not first.folds:
        reporter.start_phase("scoring")
        return first, probs, _label_scores(targets.numpy(), probs.numpy(), method)
    scores = _label_scores(targets.numpy(), probs.numpy(), method)
    keep = torch.ones(len(targets), dtype=torch.bool)
    keep[torch.from_numpy(np.argsort(scores, kind="stable")[: int(prune * len(targets))].copy())] = False
    # The second round starts again from the head's start (a CLIP head: its zero-shot classifier) with the
    # first round's standardisation, so the kept vectors lie in the first round's coordinates: no new
    # decomposition, and the two rounds score on the same scale.
    head.load_state_dict(start_head.state_dict())
    head.set_standardisation(features)
    # The kept vectors by their row numbers, not as a copy: at 100k vectors a copy is most of the features.
    kept = keep.nonzero().squeeze(1)
    second, kept_probs = _out_of_fold(
        head, features, targets[keep], reporter, fold_seeds, (first.l2,), standardise=False, basis=first.basis,
        groups=groups[keep] if groups is not None else None, rows=kept,
    )  # fmt: skip
    probs = probs.clone()
    probs[keep] = kept_probs
    probs[~keep] = calibrated_probabilities(head.logits_of(features, (~keep).nonzero().squeeze(1)), head.temperature)
    reporter.start_phase("scoring")
    return second, probs, _label_scores(targets.numpy(), probs.numpy(), method)


def _out_of_fold(
    head: LinearHead,
    features: torch.Tensor,
    targets: torch.Tensor,
    reporter: Reporter,
    fold_seeds: Sequence[int],
    grid: tuple[float, ...] | None,
    standardise: bool = True,
    basis: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> tuple[ProbeFit, torch.Tensor]:
    """Out-of-fold probabilities averaged over fold assignments; `head` ends fitted on all the vectors (the
    given rows of them)."""
    seeds = tuple(fold_seeds) or (0,)
    probe = fit_probe(
        head, features, targets, reporter, balanced=False, grid=grid or L2_GRID, seed=seeds[0],
        extra_seeds=seeds[1:], standardise=standardise, basis=basis, groups=groups, rows=rows,
    )  # fmt: skip
    return probe, probe.oof_probabilities


def warm_up() -> None:
    """Import and run the scoring library once on a tiny problem (its first use costs seconds of imports)."""
    _label_scores(np.array([0, 1, 0, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]), SCORE_METHOD)


def _label_scores(labels: np.ndarray, probabilities: np.ndarray, method: ScoreMethod) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores

    return np.asarray(get_label_quality_scores(labels, probabilities, method=method), dtype=np.float64)


def _probs(names: Sequence[str], row: torch.Tensor) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(names, row, strict=True)}


def _review_row(
    key: _Key, names: Sequence[str], probs: torch.Tensor, score: float, scorer: str, revision: int
) -> LabelQuality:
    suggested = int(probs.argmax())
    given = names[key.class_index]
    return LabelQuality(
        key.image_id, key.person_id, "review", given, names[suggested], score, _probs(names, probs),
        suggested != key.class_index, scorer, revision,
    )  # fmt: skip


def _next_row(
    item: LabelledItem, names: Sequence[str], probs: torch.Tensor, scorer: str, revision: int
) -> LabelQuality:
    top2 = torch.topk(probs, min(2, len(names))).values
    margin = float(top2[0] - top2[1]) if len(top2) > 1 else 1.0
    return LabelQuality(
        item.image_id, None, "next", None, names[int(probs.argmax())], margin, _probs(names, probs), False, scorer,
        revision,
    )  # fmt: skip
