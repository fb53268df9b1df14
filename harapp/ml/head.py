"""Fitting the linear head on cached features: standardised inputs, a class-balanced loss, the strength of
the L2 penalty chosen by cross-validation, and a temperature fitted on the out-of-fold predictions.

On a few hundred vectors each fit is a convex problem that full-batch L-BFGS solves in tens of
milliseconds, so choosing the strength by 5-fold cross-validation costs well under a second. On the real
COCO photos the chosen strength beat the old fixed one by 2 to 4 points (bench/README.md), and the
out-of-fold predictions it leaves behind are exactly what calibration and label-quality scores need.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harapp.ml.calibration import fit_temperature
from harapp.ml.models import LinearHead
from harapp.ml.progress import Phase, Reporter

L2_GRID: tuple[float, ...] = (0.2, 0.4, 0.8)
"""Penalty strengths tried (on the summed squared distance of the weights from their start). On the COCO
photos' features (whole + person + pose, standardised, ~370 training photos) 5-fold accuracy is flat at 0.71-0.72
from 0.2 to 1.0 and falls beyond (0.69 at 3.0); harapp 0.1's fixed 1e-2 was far too weak. A grid that reached
3.0 cost half a point, because the held-out loss sometimes preferred it (bench/README.md)."""
FALLBACK_L2 = 0.4
INNER_FOLDS = 5
MAX_ITER = 200


@dataclass(frozen=True)
class ProbeFit:
    """How a head was fitted, and its out-of-fold predictions (None where cross-validation was impossible)."""

    l2: float
    temperature: float
    loss: float
    folds: int
    """Folds of the inner cross-validation; 0 when some class had too few images for it."""
    oof_probabilities: torch.Tensor
    """Calibrated class probabilities of each training vector from the fold that did not see it (see
    in_sample for the exceptions)."""
    oof_logits: torch.Tensor
    oof_accuracy: float | None
    """Accuracy of the held-out predictions."""
    in_sample: torch.Tensor
    """True for the vectors of classes too small to hold out: their row of oof_* is the final fit's own
    (in-sample) prediction."""
    note: str = ""


def balanced_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights: every present class carries the same total weight (absent: 0)."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    present = counts > 0
    weights = torch.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def stratified_folds(targets: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """A fold number for each vector, every class spread evenly over the folds (seeded). A class with fewer
    vectors than folds gets -1: it is never held out, since a fold without it could not learn it."""
    assignment = torch.full((len(targets),), -1, dtype=torch.long)
    rng = random.Random(seed)
    offset = 0
    values = targets.tolist()
    for cls in sorted(set(values)):
        members = [i for i, t in enumerate(values) if t == cls]
        if len(members) < folds:
            continue
        rng.shuffle(members)
        for j, i in enumerate(members):
            assignment[i] = (j + offset) % folds
        offset += len(members)
    return assignment


def usable_folds(targets: torch.Tensor, wanted: int = INNER_FOLDS) -> int:
    """The most folds up to `wanted` for which some class has a vector in every fold and at least two
    classes are present; 0 when there is no such number (cross-validation is impossible)."""
    counts = torch.bincount(targets) if len(targets) else torch.zeros(0, dtype=torch.long)
    if int((counts > 0).sum()) < 2:
        return 0
    largest = int(counts.max())
    k = min(wanted, largest)
    return k if k >= 2 else 0


@contextmanager
def one_thread() -> Iterator[None]:
    """Run small linear algebra on one thread. On a busy 2-core machine, OpenMP's threads spin waiting for
    each other: an SVD of 463 x 1,280 took 11.7 s on two threads and 0.36 s on one (bench/README.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_probe(
    head: LinearHead,
    features: torch.Tensor,
    targets: torch.Tensor,
    reporter: Reporter,
    *,
    balanced: bool = True,
    standardise: bool = True,
    grid: tuple[float, ...] = L2_GRID,
    folds: int = INNER_FOLDS,
    seed: int = 0,
    phase: Phase = "training",
) -> ProbeFit:
    """Fit `head` in place on all vectors with the chosen strength and set its temperature. ``phase`` names the
    fit in progress reports (a fine-tune's warm-up is not its training).

    The penalty pulls the weights towards where they start, so a CLIP head stays near its zero-shot
    classifier when there is little data.
    """
    reporter.start_phase(phase)
    with one_thread():
        return _fit_probe(head, features, targets, reporter, balanced, standardise, grid, folds, seed)


def _fit_probe(
    head: LinearHead,
    features: torch.Tensor,
    targets: torch.Tensor,
    reporter: Reporter,
    balanced: bool,
    standardise: bool,
    grid: tuple[float, ...],
    folds: int,
    seed: int,
) -> ProbeFit:
    num_classes = head.linear.out_features
    if standardise:
        head.set_standardisation(features)
    with torch.no_grad():
        xs = (features.float() - head.shift) / head.scale
    start_w, start_b = head.linear.weight.detach().clone(), head.linear.bias.detach().clone()
    space = _Space.of(xs, start_w)
    xs = space.inputs
    k = usable_folds(targets, folds)
    total_fits = (len(grid) * k if k else 0) + 1
    fits = [0]

    rows = [torch.ones(len(targets), dtype=torch.bool)]  # the rows the next fit sees, for their offsets

    def fit(
        x: torch.Tensor, y: torch.Tensor, l2: float, w0: torch.Tensor, b0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        weight = balanced_weights(y, num_classes) if balanced else None
        result = _lbfgs(x, y, weight, l2, space.anchor, w0, b0, space.offset[rows[0]])
        fits[0] += 1
        reporter.step(epoch=1, epochs=1, step=fits[0], steps=total_fits, images=0, loss=result[2])
        return result

    chosen, note = (grid[0] if len(grid) == 1 else FALLBACK_L2), ""
    oof_logits: torch.Tensor | None = None
    fold_of = stratified_folds(targets, k, seed) if k else torch.full((len(targets),), -1)
    held_out = fold_of >= 0
    if k:
        best_score = float("inf")
        warm = {f: (space.anchor, start_b) for f in range(k)}
        weight = balanced_weights(targets[held_out], num_classes) if balanced else None
        for l2 in grid:
            logits = torch.zeros(len(targets), num_classes)
            for f in range(k):
                train, held = fold_of != f, fold_of == f
                rows[0] = train
                w, b, _ = fit(xs[train], targets[train], l2, *warm[f])
                warm[f] = (w, b)  # the next strength starts from this solution: fewer iterations
                logits[held] = xs[held] @ w.T + b + space.offset[held]
            score = float(F.cross_entropy(logits[held_out], targets[held_out], weight=weight))
            if score < best_score:
                best_score, chosen, oof_logits = score, l2, logits
        if not bool(held_out.all()):
            small = sorted(set(targets[~held_out].tolist()))
            note = f"{len(small)} class(es) with fewer than {k} images are never held out: their scores are in-sample"
    else:
        note = (
            "too few labelled images for cross-validation: penalty strength fixed at "
            f"{chosen}, confidence not calibrated, scores in-sample"
        )
    rows[0] = torch.ones(len(targets), dtype=torch.bool)
    w, b, loss = fit(xs, targets, chosen, space.anchor, start_b)
    in_sample_logits = xs @ w.T + b + space.offset
    w = space.weights(w)
    if oof_logits is None:
        oof_logits = in_sample_logits
    else:
        oof_logits[~held_out] = in_sample_logits[~held_out]
    temperature = fit_temperature(oof_logits[held_out], targets[held_out]) if k else 1.0
    with torch.no_grad():
        head.linear.weight.copy_(w)
        head.linear.bias.copy_(b)
        head.temperature.fill_(temperature)
    head.eval()
    oof_probs = (oof_logits / temperature).softmax(1)
    held = held_out if k else torch.ones(len(targets), dtype=torch.bool)
    oof_accuracy = float((oof_probs[held].argmax(1) == targets[held]).float().mean()) if len(targets) else None
    return ProbeFit(chosen, temperature, loss, k, oof_probs, oof_logits, oof_accuracy, ~held_out, note)


@dataclass(frozen=True)
class _Space:
    """Where the fits run. With fewer vectors than dimensions (a few hundred photos, 2,600 features), the
    solution's change from its start lies in the span of the vectors (the penalty removes any other part),
    so the fits run in coordinates of that span: the same problem, exactly, at a fifth of the cost."""

    inputs: torch.Tensor
    """The vectors in the fitting coordinates."""
    offset: torch.Tensor
    """Logits the starting weights give each vector (zeros when the fit runs in the original coordinates)."""
    anchor: torch.Tensor
    """Where the penalty pulls the weights, in the fitting coordinates."""
    basis: torch.Tensor | None
    start: torch.Tensor

    @classmethod
    def of(cls, xs: torch.Tensor, start: torch.Tensor) -> _Space:
        n, dim = xs.shape
        if n == 0 or n >= dim:
            return cls(xs, torch.zeros(n, start.shape[0]), start, None, start)
        _, singular, vh = torch.linalg.svd(xs, full_matrices=False)
        basis = vh[singular > singular[0] * 1e-6] if len(singular) else vh
        return cls(xs @ basis.T, xs @ start.T, torch.zeros(start.shape[0], len(basis)), basis, start)

    def weights(self, fitted: torch.Tensor) -> torch.Tensor:
        """Fitted weights back in the original coordinates."""
        return fitted if self.basis is None else self.start + fitted @ self.basis


def _lbfgs(
    x: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor | None,
    l2: float,
    anchor: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
    offset: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Minimise the weighted cross-entropy of x W^T + b + offset plus l2 * |W - anchor|^2 from (w0, b0):
    (W, b, objective)."""
    w = w0.detach().clone().requires_grad_(True)
    b = b0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=MAX_ITER, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-5, tolerance_change=1e-8,
    )  # fmt: skip

    shift = offset if offset is not None else 0.0

    def objective() -> torch.Tensor:
        return F.cross_entropy(x @ w.T + b + shift, y, weight=class_weight) + l2 * (w - anchor).pow(2).sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        final = float(objective())
    return w.detach(), b.detach(), final
