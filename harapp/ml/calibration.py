"""Calibrated confidence: temperatures fitted on held-out predictions, and how far off confidence is.

A linear head trained with a class-balanced loss on a few hundred photos is over-confident: of its
predictions made with 90% confidence, far fewer than 90% are right. Dividing the logits by one temperature,
fitted on predictions for images the model did not learn from, fixes most of that without changing which
class comes out on top (Guo et al., 2017).

One temperature is not enough for a class-balanced head: the loss weighs a rare class's few photos up, so the
head names that class more often than it is right about it, and with more confidence. On the coco-har photos
(bench/accuracy_bench.py) predictions of running came out 68% sure and 50% right after one shared
temperature, while sitting's were as sure as they were right (79% and 78%). So each prediction is divided by
the temperature of the class it predicts (top-label calibration, Gupta & Ramdas 2022): still one positive
number per row, so the winning class never changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the metrics (and so the GUI's Results) read this module without loading torch
    import torch

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
PRIOR_WEIGHT = 1.0
"""How strongly a class's temperature is pulled towards the shared one, in held-out predictions' worth of
log-likelihood. A weak pull: it settles a class predicted once or twice, which the likelihood alone would leave
wherever the solver stopped, and a class predicted a few dozen times follows its own predictions. Stronger
pulls (4, 8, 16) gave calibrations between this one and one shared temperature (bench/README.md)."""


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature that minimises the negative log-likelihood of held-out logits; 1.0 without data."""
    import torch
    import torch.nn.functional as F

    if len(targets) == 0:
        return 1.0
    logits = logits.detach().float()
    targets = targets.long()
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    low, high = TEMPERATURE_RANGE
    temperature = float(log_t.detach().exp())
    return float(min(high, max(low, temperature))) if np.isfinite(temperature) else 1.0


def fit_class_temperatures(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A temperature for each class, used for the predictions that name it (see the module's docstring): the
    least negative log-likelihood of held-out logits, each class pulled towards the one shared temperature. A
    class never predicted keeps the shared temperature; all ones without data."""
    import torch
    import torch.nn.functional as F

    logits = logits.detach().float().cpu()
    targets = targets.long().cpu()
    shared = fit_temperature(logits, targets)
    start = torch.full((logits.shape[1],), float(np.log(shared)))
    if len(targets) == 0:
        return start.exp()
    predicted = logits.argmax(1)
    log_t = start.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        row_t = log_t.exp()[predicted].unsqueeze(1)
        loss = F.cross_entropy(logits / row_t, targets, reduction="sum") + PRIOR_WEIGHT * (log_t - start).square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    fitted = log_t.detach().exp()
    low, high = TEMPERATURE_RANGE
    return torch.where(fitted.isfinite(), fitted.clamp(low, high), torch.tensor(shared))


@dataclass(frozen=True)
class ReliabilityBin:
    """Predictions whose confidence lies in (lower, upper]: how many, how sure on average, how often right."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def reliability(
    probabilities: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    targets: Sequence[int] | np.ndarray | torch.Tensor,
    bins: int = ECE_BINS,
) -> list[ReliabilityBin]:
    """The reliability diagram's bins of top-class confidence, equal width over [0, 1]."""
    probs = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(targets, dtype=np.int64)
    if probs.size == 0:
        return []
    confidence = probs.max(1)
    correct = probs.argmax(1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = []
    for i, (lower, upper) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        inside = (confidence > lower) & (confidence <= upper) if i else (confidence >= lower) & (confidence <= upper)
        count = int(inside.sum())
        out.append(
            ReliabilityBin(
                float(lower), float(upper), count,
                float(confidence[inside].mean()) if count else 0.0, float(correct[inside].mean()) if count else 0.0,
            )
        )  # fmt: skip
    return out


def expected_calibration_error(
    probabilities: np.ndarray | torch.Tensor | Sequence[Sequence[float]],
    targets: Sequence[int] | np.ndarray | torch.Tensor,
    bins: int = ECE_BINS,
) -> float:
    """ECE: the gap between confidence and accuracy, averaged over confidence bins weighted by their size."""
    table = reliability(probabilities, targets, bins)
    total = sum(b.count for b in table)
    if not total:
        return 0.0
    return float(sum(b.count / total * abs(b.accuracy - b.confidence) for b in table))


def ece_if_perfectly_calibrated(
    probabilities: np.ndarray | torch.Tensor | Sequence[Sequence[float]], draws: int = 200, seed: int = 0
) -> tuple[float, float]:
    """Mean and 90th percentile of the ECE that perfectly calibrated predictions with these top confidences show
    on as many predictions: each drawn right with exactly its confidence (seeded). Binning makes it far from zero
    on a few dozen photos (about 0.1 on 70), so a measured ECE is only read against it."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.size == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    top = probs.max(1)
    # The bins of reliability(), found once: only which predictions are right changes from draw to draw, so each
    # draw's ECE is the per-bin gap between right answers and confidence, summed (as at 100k images, ~20x faster).
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    bin_of = np.searchsorted(edges[1:-1], top, side="left")
    sure = np.bincount(bin_of, weights=top, minlength=ECE_BINS)
    values = [
        np.abs(np.bincount(bin_of, weights=rng.random(len(top)) < top, minlength=ECE_BINS) - sure).sum() / len(top)
        for _ in range(draws)
    ]
    return float(np.mean(values)), float(np.percentile(values, 90))


@dataclass(frozen=True)
class Calibration:
    """What a checkpoint's metrics say about its confidence on held-out images."""

    temperatures: tuple[float, ...]
    """One per class, for the predictions that name it; a single one for models from before per-class
    temperatures."""
    ece: float
    """After calibration, on the held-out images."""
    ece_uncalibrated: float
    bins: tuple[ReliabilityBin, ...]
    fitted_on: str
    """Which predictions the temperatures were fitted on, e.g. 'out-of-fold predictions of 393 images'."""
    ece_if_calibrated: float | None = None
    """The 90th percentile of ece_if_perfectly_calibrated on the same held-out images: an ECE below it cannot be
    told from perfect calibration on so few. None in metrics from before it was measured."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bins"] = [asdict(b) for b in self.bins]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        temperatures = d["temperatures"] if "temperatures" in d else [d["temperature"]]
        return cls(
            tuple(float(t) for t in temperatures),
            float(d["ece"]),
            float(d.get("ece_uncalibrated", d["ece"])),
            tuple(ReliabilityBin(**b) for b in d.get("bins", ())),
            str(d.get("fitted_on", "")),
            float(d["ece_if_calibrated"]) if d.get("ece_if_calibrated") is not None else None,
        )
