"""Calibrated confidence and the cross-validated head: temperatures, ECE, reliability, penalty choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harapp.core.types import LabelSnapshot
from harapp.ml.calibration import (
    ece_if_perfectly_calibrated,
    expected_calibration_error,
    fit_class_temperatures,
    fit_temperature,
    reliability,
)
from harapp.ml.checkpoint import load_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.head import L2_GRID, fit_probe, stratified_folds, usable_folds
from harapp.ml.models import LinearHead, calibrated_probabilities
from harapp.ml.predictor import Predictor
from harapp.ml.progress import Reporter, TrainProgress
from harapp.ml.trainer import train


def _overconfident(n: int = 4000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 4-class model whose logits are three times what its accuracy supports: the labels are drawn from
    softmax(z), the model reports 3 z."""
    g = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn(n, 4, generator=g)
    targets = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    return 3 * z, targets


def test_temperature_scaling_lowers_the_ece_of_an_overconfident_model() -> None:
    logits, targets = _overconfident()
    before = expected_calibration_error(logits.softmax(1), targets)
    temperature = fit_temperature(logits[:3000], targets[:3000])
    after = expected_calibration_error((logits[3000:] / temperature).softmax(1), targets[3000:])
    assert temperature == pytest.approx(3.0, rel=0.15)
    assert before > 0.15 and after < 0.05  # 1,000 held-out predictions: sampling noise alone is ~0.03
    # Dividing by a temperature never changes which class comes out on top.
    assert torch.equal((logits / temperature).argmax(1), logits.argmax(1))
    assert fit_temperature(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)) == 1.0


def _overconfident_in_one_class(n: int = 6000, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Like a class-balanced head: the labels are drawn from softmax(z), and the model reports 3 z for the rows
    whose top class is 0 but z itself for the others. No single temperature suits both."""
    g = torch.Generator().manual_seed(seed)
    z = 1.5 * torch.randn(n, 4, generator=g)
    targets = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    scale = torch.where(z.argmax(1) == 0, 3.0, 1.0).unsqueeze(1)
    return scale * z, targets


def test_a_temperature_per_predicted_class_calibrates_what_one_temperature_cannot() -> None:
    logits, targets = _overconfident_in_one_class()
    fit, held = slice(0, 4000), slice(4000, None)
    temperatures = fit_class_temperatures(logits[fit], targets[fit])
    assert temperatures[0] == pytest.approx(3.0, rel=0.15)
    assert temperatures[1:].tolist() == pytest.approx([1.0] * 3, rel=0.15)
    per_class = calibrated_probabilities(logits[held], temperatures)
    one = (logits[held] / fit_temperature(logits[fit], targets[fit])).softmax(1)
    predicted_0 = logits[held].argmax(1) == 0

    def ece(probs: torch.Tensor, rows: torch.Tensor | slice = slice(None)) -> float:
        return expected_calibration_error(probs[rows], targets[held][rows])

    # Predictions of class 0 were claimed far too sure; one temperature leaves them so, the class's own fixes it.
    assert ece(one, predicted_0) > 0.08 and ece(per_class, predicted_0) < 0.05
    assert ece(per_class) < ece(one) and ece(per_class) < 0.04  # 2,000 held-out predictions
    # Each row is divided by one positive number, so the winning class never changes.
    assert torch.equal(per_class.argmax(1), logits[held].argmax(1))


def test_a_class_never_predicted_keeps_the_shared_temperature() -> None:
    logits, targets = _overconfident(2000)
    logits[:, 3] = -50.0  # class 3 is never the top class
    shared = fit_temperature(logits, targets)
    temperatures = fit_class_temperatures(logits, targets)
    assert float(temperatures[3]) == pytest.approx(shared)
    assert torch.equal(fit_class_temperatures(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)), torch.ones(4))
    # Equal temperatures for every class are the one temperature; a scalar still works (older checkpoints).
    same = calibrated_probabilities(logits, torch.full((4,), 2.0))
    assert torch.allclose(same, calibrated_probabilities(logits, 2.0)) and torch.allclose(same, (logits / 2).softmax(1))
    assert calibrated_probabilities(logits[0], temperatures).shape == (4,)  # one row without a batch dimension


def test_reliability_bins_cover_every_prediction_and_ece_is_their_weighted_gap() -> None:
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.3, 0.7]])
    targets = [0, 1, 0, 1, 1]
    bins = reliability(probs, targets, bins=10)
    assert len(bins) == 10 and sum(b.count for b in bins) == 5
    top = bins[-1]  # (0.9, 1.0]: the 0.95 prediction only; 0.9 falls in (0.8, 0.9]
    assert top.count == 1 and top.confidence == pytest.approx(0.95) and top.accuracy == 1.0
    expected = sum(b.count / 5 * abs(b.accuracy - b.confidence) for b in bins)
    assert expected_calibration_error(probs, targets, bins=10) == pytest.approx(expected)
    assert expected_calibration_error(np.zeros((0, 2)), []) == 0.0


def test_perfectly_calibrated_predictions_show_an_ece_that_shrinks_with_their_number() -> None:
    """ECE is biased upwards by binning: on 70 held-out photos even perfect calibration shows about 0.1."""
    rng = np.random.default_rng(0)
    top = rng.uniform(0.4, 1.0, 5000)
    probs = np.stack([top, 1 - top], 1)
    few_mean, few_p90 = ece_if_perfectly_calibrated(probs[:70])
    many_mean, many_p90 = ece_if_perfectly_calibrated(probs)
    assert 0.06 < few_mean < few_p90 < 0.2 and many_mean < many_p90 < 0.03
    assert ece_if_perfectly_calibrated(np.zeros((0, 2))) == (0.0, 0.0)


@pytest.fixture
def reporter() -> Reporter:
    return Reporter(None, None)


def _blobs(n_per_class: int, noise: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0.0, 1.0], [-3.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    labels = torch.arange(3).repeat(n_per_class)
    return centres[labels] + noise * torch.randn(len(labels), 3, generator=g), labels


def test_probe_chooses_its_penalty_by_cross_validation_and_calibrates() -> None:
    features, labels = _blobs(40, noise=2.0)
    head = LinearHead(3, 3)
    reports: list[TrainProgress] = []
    fit = fit_probe(head, features, labels, Reporter(reports.append, None, 1e9))
    assert fit.l2 in L2_GRID and fit.folds == 5 and fit.note == ""
    assert fit.oof_probabilities is not None and fit.oof_probabilities.shape == (120, 3)
    assert fit.oof_accuracy is not None and 0.6 < fit.oof_accuracy <= 1.0
    held = ~fit.in_sample
    assert torch.equal(head.temperature, fit.temperatures)
    assert torch.equal(fit.temperatures, fit_class_temperatures(fit.oof_logits[held], labels[held]))
    assert len(set(fit.temperatures.tolist())) == 3  # each class its own
    # The standardisation uses the features' statistics; probabilities come out calibrated.
    assert torch.allclose(head.shift, features.mean(0)) and torch.allclose(head.scale, features.std(0))
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(reports) == len(L2_GRID) + 1  # one solver run per strength (all folds at once), then the final fit


def test_folds_solved_together_match_folds_solved_alone() -> None:
    """The batched solver is an optimisation, not an approximation: each fold's held-out logits are those of a
    probe fitted on that fold's training vectors alone, with the same standardisation. With fewer vectors than
    dimensions (as with real photos) both fits run in a row space: the whole set's for the batched folds, the
    fold's own for the probe alone, so this also checks that the row space loses nothing."""
    features, labels = _blobs(30, noise=1.5, seed=3)
    noise = torch.randn(len(labels), 150, generator=torch.Generator().manual_seed(1))
    features = torch.cat([features, noise], 1)
    assert len(features) < features.shape[1]
    fit = fit_probe(LinearHead(153, 3), features, labels, Reporter(None, None), grid=(0.4,), seed=2)
    folds = stratified_folds(labels, 5, seed=2)
    for f in range(5):
        train, held = folds != f, folds == f
        alone = LinearHead(153, 3)
        alone.set_standardisation(features)  # the batched folds standardise with the whole set's statistics
        fit_probe(alone, features[train], labels[train], Reporter(None, None), grid=(0.4,), folds=0, standardise=False)
        with torch.no_grad():
            expected = alone.linear((features[held] - alone.shift) / alone.scale)
        assert torch.allclose(fit.oof_logits[held], expected, atol=2e-3, rtol=1e-3)


def test_small_classes_are_scored_in_sample_and_tiny_sets_fall_back(reporter: Reporter) -> None:
    features, labels = _blobs(6, noise=0.3)
    keep = (labels != 0) | (torch.arange(len(labels)) < 3)  # class 0 keeps a single image
    features, labels = features[keep], labels[keep]
    head = LinearHead(3, 3)
    fit = fit_probe(head, features, labels, reporter)
    assert fit.folds == 5
    assert fit.in_sample.tolist() == (labels == 0).tolist()
    assert "never held out" in fit.note and fit.oof_probabilities.shape == (len(labels), 3)
    two = fit_probe(LinearHead(3, 3), features[:2], torch.tensor([1, 2]), reporter)
    assert two.folds == 0 and bool((two.temperatures == 1.0).all()) and bool(two.in_sample.all())
    assert "too few labelled images" in two.note


def test_folds_spread_every_class() -> None:
    labels = torch.tensor([0] * 10 + [1] * 5 + [2] * 7)
    folds = stratified_folds(labels, 5, seed=3)
    for f in range(5):
        members = labels[folds == f].tolist()
        assert members.count(1) == 1 and members.count(0) == 2 and members.count(2) >= 1
    assert usable_folds(labels) == 5 and usable_folds(torch.tensor([0, 0, 1])) == 2
    assert usable_folds(torch.tensor([0, 0, 0])) == 0 and usable_folds(torch.tensor([0, 1])) == 0
    assert stratified_folds(torch.tensor([0, 0, 1, 1, 1]), 3, seed=0)[:2].tolist() == [-1, -1]


def test_folds_keep_the_rows_of_one_photo_together() -> None:
    labels = torch.tensor([0] * 12 + [1] * 12)
    groups = torch.arange(24) // 2  # an image row and a person row per photo
    folds = stratified_folds(labels, 3, seed=1, groups=groups)
    assert all(folds[2 * g] == folds[2 * g + 1] for g in range(12))
    assert sorted(torch.bincount(folds).tolist()) == [8, 8, 8]
    # Without groups every row is its own group: the same assignment as before groups existed.
    assert torch.equal(
        stratified_folds(labels, 3, seed=1), stratified_folds(labels, 3, seed=1, groups=torch.arange(24))
    )


def test_a_linear_probe_stores_its_calibration_and_the_predictor_uses_it(
    shapes_snapshot: LabelSnapshot, tmp_path: Path
) -> None:
    config = TrainConfig(model_kind="efficientnet-lite0", image_size=64, batch_size=16, device="cpu")
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    metrics = result.metrics
    assert metrics is not None and metrics.calibration is not None
    calibration = metrics.calibration
    assert len(calibration.temperatures) == len(shapes_snapshot.class_names) and min(calibration.temperatures) > 0
    assert "out-of-fold" in calibration.fitted_on
    assert calibration.ece_if_calibrated is not None and calibration.ece_if_calibrated > 0
    assert metrics.ece == calibration.ece and sum(b.count for b in calibration.bins) == len(metrics.test_targets)
    probe = [h for h in result.history if "l2" in h]
    assert probe and probe[0]["l2"] in L2_GRID and probe[0]["temperatures"] == pytest.approx(calibration.temperatures)
    ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt.head_state["temperature"].tolist() == pytest.approx(calibration.temperatures)
    assert ckpt.metrics is not None and ckpt.metrics.calibration == calibration
    predictor = Predictor.from_checkpoint(ckpt, device="cpu")
    item = next(it for it in shapes_snapshot.items if it.image_id == metrics.test_image_ids[0])
    pred = predictor.predict(item.path, item.person_boxes)
    assert not isinstance(pred, list)
    assert pred.probabilities == pytest.approx(metrics.test_probabilities[0], abs=1e-4)


def _many_vectors(n: int = 600, dim: int = 40, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """More vectors than dimensions (the fit runs in the original coordinates, as at 100k images), 4 classes
    that overlap, off-centre features."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat(n // 4)
    features = 2.0 + torch.randn(4, dim, generator=g)[labels] + 2.0 * torch.randn(n, dim, generator=g)
    return features, labels


def test_a_fit_in_blocks_of_vectors_matches_the_fit_on_one_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """With at least as many vectors as dimensions the solver works through the vectors a block at a time (at
    100k vectors one standardised copy of them all would be most of a gigabyte). Here one block holds all 600
    (the fit on one matrix, as before blocks existed); 64-row blocks must give the same fit, up to rounding."""
    from harapp.ml import models

    features, labels = _many_vectors()
    one = fit_probe(LinearHead(40, 4), features, labels, Reporter(None, None), extra_seeds=(1, 2))
    head = LinearHead(40, 4)
    monkeypatch.setattr(models, "BLOCK_VALUES", 64 * 40)
    assert len(list(models.row_blocks(600, 40))) == 10
    blocks = fit_probe(head, features, labels, Reporter(None, None), extra_seeds=(1, 2))
    assert blocks.l2 == one.l2 and blocks.folds == one.folds == 5 and blocks.basis is None
    assert torch.allclose(blocks.oof_logits, one.oof_logits, atol=1e-5)  # logits up to 2.5
    # The temperature's own solver stops within its tolerance: probabilities agree a little less closely.
    assert torch.allclose(blocks.temperatures, one.temperatures, rtol=1e-3)
    assert torch.allclose(blocks.oof_probabilities, one.oof_probabilities, atol=1e-4)
    assert blocks.loss == pytest.approx(one.loss, rel=1e-5)
    with torch.no_grad():
        assert torch.allclose(head.logits_of(features), head(features), atol=1e-5)  # logits_of: blocks too


def test_a_fit_on_rows_of_the_vectors_is_the_fit_on_their_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    from harapp.ml import models

    monkeypatch.setattr(models, "BLOCK_VALUES", 64 * 40)
    features, labels = _many_vectors()
    rows = torch.arange(0, 600, 3)[torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    rows = torch.cat([rows, torch.arange(1, 600, 3)])  # 400 rows (more than the dimensions), out of order
    fits, heads = [], []
    for subset, given_rows in ((features[rows], None), (features, rows)):
        head = LinearHead(40, 4)
        head.set_standardisation(features)
        fits.append(
            fit_probe(head, subset, labels[rows], Reporter(None, None), standardise=False, rows=given_rows, seed=1)
        )
        heads.append(head)
    copied, indexed = fits
    assert torch.equal(indexed.oof_probabilities, copied.oof_probabilities)
    assert torch.equal(heads[1].linear.weight, heads[0].linear.weight) and torch.equal(
        indexed.temperatures, copied.temperatures
    )
    assert torch.equal(heads[0].logits_of(features, rows), heads[0].logits_of(features[rows]))


def test_float16_vectors_fit_like_their_float32_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """100k vectors are held as float16 (half the memory); the fit converts a block at a time, and their
    statistics are summed in float32 blocks and float64 across blocks, not in float16."""
    from harapp.ml import models

    monkeypatch.setattr(models, "BLOCK_VALUES", 64 * 40)
    features, labels = _many_vectors()
    half = (features * 100).half()  # values up to ~1,000: a float16 sum of 600 of them would be far off
    mean, std = models.column_statistics(half)
    exact = half.double()
    assert torch.allclose(mean.double(), exact.mean(0), rtol=1e-6) and torch.allclose(std.double(), exact.std(0))
    heads = [LinearHead(40, 4), LinearHead(40, 4)]
    fits = [fit_probe(h, x, labels, Reporter(None, None)) for h, x in zip(heads, (half, half.float()), strict=True)]
    assert fits[0].l2 == fits[1].l2
    assert torch.allclose(fits[0].oof_probabilities, fits[1].oof_probabilities, atol=1e-4)
    assert torch.allclose(heads[0].shift, heads[1].shift, rtol=1e-5)
    assert torch.allclose(heads[0].logits_of(half), heads[1].logits_of(half.float()), atol=1e-3)
