"""Fitting the linear head on cached features: standardised inputs, a class-balanced loss, the strength of
the L2 penalty chosen by cross-validation, and temperatures fitted on the out-of-fold predictions.

On a few hundred vectors each fit is a convex problem that full-batch L-BFGS solves in tens of
milliseconds, so choosing the strength by 5-fold cross-validation costs well under a second. On the real
COCO photos the chosen strength beat the old fixed one by 2 to 4 points (bench/README.md), and the
out-of-fold predictions it leaves behind are exactly what calibration and label-quality scores need.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harapp.ml.calibration import fit_class_temperatures
from harapp.ml.models import LinearHead, calibrated_probabilities, row_blocks
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
    temperatures: torch.Tensor
    """One per class (see harapp.ml.calibration); all ones when cross-validation was impossible."""
    loss: float
    folds: int
    """Folds of the inner cross-validation; 0 when some class had too few images for it."""
    oof_probabilities: torch.Tensor
    """Calibrated class probabilities of each training vector from the fold that did not see it (see
    in_sample for the exceptions)."""
    oof_logits: torch.Tensor
    oof_accuracy: float | None
    """Accuracy of oof_probabilities over the vectors that were held out (over all of them, in-sample, when
    cross-validation was impossible); None without vectors."""
    in_sample: torch.Tensor
    """True for the vectors of classes too small to hold out: their row of oof_* is the final fit's own
    (in-sample) prediction."""
    note: str = ""
    basis: torch.Tensor | None = None
    """The coordinates the fit ran in (see _Space), for a later fit on a subset of these vectors."""


def balanced_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights: every present class carries the same total weight (absent: 0)."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    present = counts > 0
    weights = torch.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def stratified_folds(targets: torch.Tensor, folds: int, seed: int, groups: torch.Tensor | None = None) -> torch.Tensor:
    """A fold number for each vector, every class spread evenly over the folds (seeded). A class with fewer
    vectors than folds gets -1: it is never held out, since a fold without it could not learn it.

    ``groups``: vectors of one group (the image and the people of one photo, which share its whole view)
    always share a fold, or a held-out label would be judged by a model that saw its photo; a group counts
    under the class of its first vector, and a group holding a vector of a class with fewer groups than folds is
    never held out either.
    """
    assignment = torch.full((len(targets),), -1, dtype=torch.long)
    values = targets.tolist()
    members: dict[int, list[int]] = {}
    for i, key in enumerate(groups.tolist() if groups is not None else range(len(values))):
        members.setdefault(key, []).append(i)
    rng = random.Random(seed)
    offset = 0
    for cls in sorted(set(values)):
        of_class = [g for g, rows in members.items() if values[rows[0]] == cls]
        if len(of_class) < folds:
            continue
        rng.shuffle(of_class)
        for j, g in enumerate(of_class):
            assignment[members[g]] = (j + offset) % folds
        offset += len(of_class)
    groups_of: dict[int, set[int]] = {}
    for g, rows in members.items():
        for i in rows:
            groups_of.setdefault(values[i], set()).add(g)
    for holding in groups_of.values():
        if len(holding) < folds:
            for g in holding:
                assignment[members[g]] = -1
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


_threads_lock = threading.Lock()
_one_thread_users = [0]
_threads_before = [1]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run small linear algebra on one thread. On a busy 2-core machine, OpenMP's threads spin waiting for
    each other: an SVD of 463 x 1,280 took 11.7 s on two threads and 0.36 s on one (bench/README.md).

    torch's thread count is global: the first of several overlapping users (a retrain and the label scores run
    side by side after a correction) lowers it and the last one restores it. Meanwhile any other torch work in
    the process runs on one thread too; the fits last well under a second, and the app's background refresh
    gives way to a training run rather than overlap it.
    """
    with _threads_lock:
        if _one_thread_users[0] == 0:
            _threads_before[0] = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users[0] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _one_thread_users[0] -= 1
            if _one_thread_users[0] == 0:
                torch.set_num_threads(_threads_before[0])


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
    extra_seeds: Sequence[int] = (),
    basis: torch.Tensor | None = None,
    groups: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> ProbeFit:
    """Fit `head` in place on all vectors with the chosen strength and set its temperatures. ``phase`` names the
    fit in progress reports (a fine-tune's warm-up is not its training). ``extra_seeds``: more fold
    assignments whose out-of-fold probabilities (at the chosen strength) are averaged in: steadier scores.
    ``basis``: the ProbeFit.basis of an earlier fit on a superset of these vectors, standardised the same way
    (``standardise=False`` on a head holding that fit's statistics): it spares a decomposition. ``groups``:
    vectors that must share a fold (see stratified_folds). ``rows``: the indices of the vectors of `features`
    to fit on (default: all of them), for a subset of many vectors without a copy of it; targets, groups and
    the results are then per fitted vector. ``features`` may be float16 (half the memory of 100k vectors).

    The penalty pulls the weights towards where they start, so a CLIP head stays near its zero-shot
    classifier when there is little data.
    """
    reporter.start_phase(phase)
    with one_thread():
        return _fit_probe(
            head, features, targets, reporter, balanced, standardise, grid, folds, seed, extra_seeds, basis, groups,
            rows,
        )  # fmt: skip


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
    extra_seeds: Sequence[int],
    basis: torch.Tensor | None,
    groups: torch.Tensor | None,
    rows: torch.Tensor | None,
) -> ProbeFit:
    num_classes = head.linear.out_features
    if standardise:
        # A subset's statistics need its copy; the callers that fit a subset keep earlier statistics instead.
        head.set_standardisation(features if rows is None else features[rows])
    start_w, start_b = head.linear.weight.detach().clone(), head.linear.bias.detach().clone()
    # The statistics as they are now: the blocks of vectors are standardised later, at every step of the solver.
    inputs = _Inputs(features, rows, head.shift.detach().clone(), head.scale.detach().clone())
    space = _Space.of(inputs, start_w, basis)
    fitter = _Fitter(space, targets, num_classes, start_b, balanced)
    k = usable_folds(targets, folds)
    choosing = k > 0 and len(grid) > 1
    runs = (len(grid) if choosing else 0) + 1
    done = [0]

    def report(loss: float) -> None:
        done[0] += 1
        reporter.step(epoch=1, epochs=1, step=done[0], steps=runs, images=0, loss=loss)

    chosen, note = (grid[0] if len(grid) == 1 else FALLBACK_L2), ""
    fold_of = stratified_folds(targets, k, seed, groups) if k else torch.full((len(targets),), -1)
    held_out = fold_of >= 0
    if choosing:
        best_score = float("inf")
        warm: tuple[torch.Tensor, torch.Tensor] | None = None
        weight = balanced_weights(targets[held_out], num_classes) if balanced else None
        for l2 in grid:
            # Every fold in one optimisation: the folds are independent, and one solver run pays Python's
            # overhead once instead of k times. The next strength starts from this one's solutions.
            logits, warm, loss = fitter.out_of_fold([fold_of], k, l2, warm, with_all=False)
            report(loss)
            score = float(F.cross_entropy(logits[0][held_out], targets[held_out], weight=weight))
            if score < best_score:
                best_score, chosen = score, l2
    if not k:
        note = (
            "too few labelled images for cross-validation: penalty strength fixed at "
            f"{chosen}, confidence not calibrated, scores in-sample"
        )
    elif not bool(held_out.all()):
        small = sorted(set(targets[~held_out].tolist()))
        note = f"{len(small)} class(es) with fewer than {k} images are never held out: their scores are in-sample"
    # One more run at the chosen strength: the folds of every assignment and the final fit on all vectors.
    assignments = [fold_of, *(stratified_folds(targets, k, s, groups) for s in extra_seeds)] if k else []
    held_logits, (w_all, b_all), loss = fitter.out_of_fold(assignments, k, chosen, None, with_all=True)
    report(loss)
    w, b = w_all[-1], b_all[-1]
    in_sample_logits = space.logits(w, b)
    for assignment_logits, assignment in zip(held_logits, assignments, strict=True):
        assignment_logits[assignment < 0] = in_sample_logits[assignment < 0]
    oof_logits = held_logits[0] if held_logits else in_sample_logits
    temperatures = fit_class_temperatures(oof_logits[held_out], targets[held_out]) if k else torch.ones(num_classes)
    with torch.no_grad():
        head.linear.weight.copy_(space.weights(w))
        head.linear.bias.copy_(b)
        head.temperature.copy_(temperatures)
    head.eval()
    oof_probs = torch.stack(
        [calibrated_probabilities(each, temperatures) for each in held_logits or [oof_logits]]
    ).mean(0)
    held = held_out if k else torch.ones(len(targets), dtype=torch.bool)
    oof_accuracy = float((oof_probs[held].argmax(1) == targets[held]).float().mean()) if len(targets) else None
    return ProbeFit(chosen, temperatures, loss, k, oof_probs, oof_logits, oof_accuracy, ~held_out, note, space.basis)


class _Fitter:
    """Fits in the coordinates of a _Space: one problem, or many (folds, fold assignments) at once."""

    def __init__(
        self, space: _Space, targets: torch.Tensor, num_classes: int, start_b: torch.Tensor, balanced: bool
    ) -> None:
        self.space = space
        self.targets = targets
        self.num_classes = num_classes
        self.start_b = start_b
        self.balanced = balanced

    def out_of_fold(
        self,
        assignments: Sequence[torch.Tensor],
        k: int,
        l2: float,
        warm: tuple[torch.Tensor, torch.Tensor] | None,
        with_all: bool,
    ) -> tuple[list[torch.Tensor], tuple[torch.Tensor, torch.Tensor], float]:
        """Held-out logits for each fold assignment (fold -1: never held out, rows left at zero), the fitted
        weights (to warm-start the next strength; with_all adds a last problem fitted on every vector) and the
        mean objective (with_all: the last problem's)."""
        masks = [a != f for a in assignments for f in range(k)]
        if with_all:
            masks.append(torch.ones(len(self.targets), dtype=torch.bool))
        w, b, losses = self._solve(torch.stack(masks), l2, warm)
        logits = self.space.logits(w, b)
        out = []
        for a_index, assignment in enumerate(assignments):
            held_logits = torch.zeros(len(self.targets), self.num_classes)
            for f in range(k):
                rows = assignment == f
                held_logits[rows] = logits[a_index * k + f][rows].detach()
            out.append(held_logits)
        return out, (w.detach(), b.detach()), float(losses[-1] if with_all else losses.mean())

    def _solve(
        self, masks: torch.Tensor, l2: float, warm: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        problems = len(masks)
        anchor = self.space.anchor
        if warm is not None and warm[0].shape[0] == problems:
            w0, b0 = warm
        else:
            w0, b0 = anchor.expand(problems, *anchor.shape), self.start_b.expand(problems, -1)
        if self.balanced:
            weights = torch.stack([balanced_weights(self.targets[m], self.num_classes) for m in masks])
            row_weight = weights[:, self.targets] * masks
        else:
            row_weight = masks.float()
        return _lbfgs(self.space, self.targets, row_weight, l2, anchor, w0, b0)


@dataclass(frozen=True)
class _Inputs:
    """Vectors handed out a block of rows at a time, in float32 and standardised with `shift` and `scale`
    where those are given. With 100k vectors of 2,600 features one standardised float32 copy is most of a
    gigabyte; a block is a few megabytes, converted again at every step of the solver."""

    source: torch.Tensor
    rows: torch.Tensor | None = None
    """Which rows of source, in this order (default: all)."""
    shift: torch.Tensor | None = None
    scale: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.source) if self.rows is None else len(self.rows)

    @property
    def dim(self) -> int:
        return int(self.source.shape[1])

    def blocks(self) -> Iterator[tuple[slice, torch.Tensor]]:
        """(which rows, those vectors) for consecutive blocks; an empty one when there are no vectors. One
        buffer holds every block in turn (the solver would otherwise free and allocate megabytes thousands of
        times, and the process keeps much of what it frees that way): use each block before taking the next.
        Vectors already in the fitting coordinates (a row space's few hundred) come as one block: the numbers
        of one product."""
        if self.shift is None or self.scale is None:
            yield slice(0, len(self)), self.whole()
            return
        buffer: torch.Tensor | None = None
        for block in row_blocks(len(self), self.dim):
            part = self.source[block] if self.rows is None else self.source[self.rows[block]]
            if buffer is None:
                buffer = torch.empty(part.shape)
            out = buffer[: len(part)]
            out.copy_(part)  # float32, and standardised in place: the numbers of (part.float() - shift) / scale
            yield block, out.sub_(self.shift).div_(self.scale)

    def whole(self) -> torch.Tensor:
        """All the vectors at once (for few of them: a copy)."""
        part = self.source if self.rows is None else self.source[self.rows]
        if self.shift is None or self.scale is None:
            return part
        out = part.float() - self.shift  # one new matrix, divided in place
        return out.div_(self.scale)


@dataclass(frozen=True)
class _Space:
    """Where the fits run. With fewer vectors than dimensions (a few hundred photos, 2,600 features), the
    solution's change from its start lies in the span of the vectors (the penalty removes any other part),
    so the fits run in coordinates of that span: the same problem, exactly, at a fifth of the cost. With
    more vectors the fits run in the original coordinates, a block of vectors at a time."""

    inputs: _Inputs
    """The vectors in the fitting coordinates."""
    offset: torch.Tensor
    """Logits the starting weights give each vector (zeros when the fit runs in the original coordinates)."""
    anchor: torch.Tensor
    """Where the penalty pulls the weights, in the fitting coordinates."""
    basis: torch.Tensor | None
    start: torch.Tensor

    @classmethod
    def of(cls, inputs: _Inputs, start: torch.Tensor, basis: torch.Tensor | None = None) -> _Space:
        n, dim = len(inputs), inputs.dim
        if basis is None and (n == 0 or n >= dim):
            return cls(inputs, torch.zeros(n, start.shape[0]), start, None, start)
        xs = inputs.whole()  # fewer vectors than dimensions (or a subset of such a set): a small matrix
        if basis is None:
            basis = _row_space(xs)
        return cls(_Inputs(xs @ basis.T), xs @ start.T, torch.zeros(start.shape[0], len(basis)), basis, start)

    def logits(self, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Every vector's logits: (n, classes) for one problem's weights (classes, d), (P, n, classes) for
        P problems' (P, classes, d)."""
        if w.dim() == 2:
            return torch.cat([x @ w.T + b + self.offset[rows] for rows, x in self.inputs.blocks()])
        parts = [
            torch.einsum("nd,pcd->pnc", x, w) + b[:, None, :] + self.offset[rows][None]
            for rows, x in self.inputs.blocks()
        ]
        return torch.cat(parts, dim=1)

    def weights(self, fitted: torch.Tensor) -> torch.Tensor:
        """Fitted weights back in the original coordinates."""
        return fitted if self.basis is None else self.start + fitted @ self.basis


def _row_space(xs: torch.Tensor) -> torch.Tensor:
    """An orthonormal basis (rows) of the span of the vectors, through the eigenvectors of their Gram matrix:
    for a few hundred vectors of a few thousand features, seven times faster than an SVD of the vectors."""
    gram = xs.double() @ xs.double().T
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    keep = eigenvalues > eigenvalues.max().clamp_min(1e-30) * 1e-10  # directions the vectors really span
    scaled = eigenvectors[:, keep] / eigenvalues[keep].sqrt()
    return (scaled.T @ xs.double()).float()


def _lbfgs(
    space: _Space,
    y: torch.Tensor,
    row_weight: torch.Tensor,
    l2: float,
    anchor: torch.Tensor,
    w0: torch.Tensor,
    b0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise, for each of P problems at once, the cross-entropy of x W_p^T + b_p + offset (x: the space's
    vectors) weighted per row by row_weight[p] (0 leaves a row out) plus l2 |W_p - anchor|^2, from (w0, b0):
    (W, b, objectives).

    The P objectives are independent, so minimising their sum minimises each; one L-BFGS run over all of them
    costs about what one small problem costs, since each step's Python overhead dominates its arithmetic.
    """
    w = w0.detach().clone().requires_grad_(True)
    b = b0.detach().clone().requires_grad_(True)
    weight = row_weight.float()
    total = weight.sum(1).clamp_min(1e-12)
    picked = y[None, :, None].expand(len(weight), -1, 1)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=MAX_ITER, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-5, tolerance_change=1e-8,
    )  # fmt: skip

    def objectives(backward: bool) -> torch.Tensor:
        """The P objectives; with `backward`, their sum's gradient accumulated into w.grad and b.grad one block
        of vectors at a time, so that only one block's graph is alive (with a single block: the numbers of a
        single backward pass)."""
        data = torch.zeros(len(weight))
        for rows, x in space.inputs.blocks():
            logits = torch.einsum("nd,pcd->pnc", x, w) + b[:, None, :] + space.offset[rows][None]
            nll = -logits.log_softmax(-1).gather(2, picked[:, rows]).squeeze(2)
            part = (nll * weight[:, rows]).sum(1) / total
            if backward:
                part.sum().backward()
            data += part.detach()
        penalty = l2 * (w - anchor).pow(2).sum((1, 2))
        if backward:
            penalty.sum().backward()
        return data + penalty.detach()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        return objectives(backward=True).sum()

    opt.step(closure)
    with torch.no_grad():
        final = objectives(backward=False)
    return w.detach(), b.detach(), final
