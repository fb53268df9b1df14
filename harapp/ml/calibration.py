"""Calibrated confidence: a temperature fitted on held-out predictions, and how far off confidence is.

A linear head trained with a class-balanced loss on a few hundred photos is over-confident: of its
predictions made with 90% confidence, far fewer than 90% are right. Dividing the logits by one temperature,
fitted on predictions for images the model did not learn from, fixes most of that without changing which
class comes out on top (Guo et al., 2017).
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


@dataclass(frozen=True)
class Calibration:
    """What a checkpoint's metrics say about its confidence on held-out images."""

    temperature: float
    ece: float
    """After calibration, on the held-out images."""
    ece_uncalibrated: float
    bins: tuple[ReliabilityBin, ...]
    fitted_on: str
    """Which predictions the temperature was fitted on, e.g. 'out-of-fold predictions of 393 images'."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bins"] = [asdict(b) for b in self.bins]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            float(d["temperature"]),
            float(d["ece"]),
            float(d.get("ece_uncalibrated", d["ece"])),
            tuple(ReliabilityBin(**b) for b in d.get("bins", ())),
            str(d.get("fitted_on", "")),
        )
