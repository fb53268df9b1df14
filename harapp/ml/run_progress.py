"""One calm progress figure for a whole training run, across its named phases.

The trainer reports each phase on its own scale (features 0-100 %, then the fit 0-100 %, ...), and a fine-tune
fits a head before its epochs start. Shown raw, that reads as '100 %, ETA 0 s' followed by '1 %, ETA 50 min'.
:class:`RunTracker` maps every report onto one scale weighted by the estimated seconds of each phase
(harapp.ml.estimate), never moves backwards, and computes the time left from the estimate corrected by how
fast the run has really gone so far. Plain Python, so the GUI thread and the CLI can both use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from harapp.ml.estimate import PHASE_LABELS, RunEstimate, format_duration
from harapp.ml.mode_fields import fit_axis
from harapp.ml.progress import TrainProgress

TRAINER_PHASES = {
    "people": "people",
    "decoding": "decoding",
    "embedding": "features",
    "warm-up": "warm-up",
    "training": "fit",
    "evaluating": "evaluation",
    "predicting": "predictions",
}
"""The trainer's phase names (TrainProgress.phase) -> the run's phase keys."""
MIN_PHASE_SHARE = 0.02
"""Every phase moves the bar a little, even one estimated at 0 s (all features cached, say)."""


@dataclass(frozen=True)
class RunStatus:
    fraction: float
    """0-1 over the whole run; never decreases within a run."""
    phase: str
    phase_number: int
    """1-based position of the phase in the run."""
    phase_count: int
    eta_seconds: float | None
    detail: str
    """What the phase is doing right now, e.g. 'epoch 3 of 10 · batch 4/12 · 14.2 images/s · loss 0.512'."""

    @property
    def phase_label(self) -> str:
        return PHASE_LABELS.get(self.phase, self.phase)

    def headline(self) -> str:
        """'Step 2 of 4: features'."""
        return f"Step {self.phase_number} of {self.phase_count}: {self.phase_label}"


class RunTracker:
    def __init__(self, estimate: RunEstimate, clock: Callable[[], float] = time.monotonic) -> None:
        self.estimate = estimate
        self.clock = clock
        self.started = clock()
        keys = estimate.phase_keys()
        total = max(1e-6, estimate.total_seconds)
        shares = [max(MIN_PHASE_SHARE, p.seconds / total) for p in estimate.phases]
        scale = sum(shares) or 1.0
        self._keys = keys
        self._shares = [s / scale for s in shares]
        self._seconds = [p.seconds for p in estimate.phases]
        self._fraction = 0.0
        self._planned_done = 0.0
        """Estimated seconds of the work done so far: the ETA compares it with the real time taken."""
        self._phase_index = 0
        self._entered: dict[str, float] = {keys[0]: self.started} if keys else {}
        """When each phase was first reported: the real time per phase, to compare with the estimate."""

    # -- feeding ----------------------------------------------------------------------------------------------

    def on_train(self, p: TrainProgress) -> RunStatus:
        key = TRAINER_PHASES.get(p.phase, p.phase)
        return self._update(key, p.fraction, _train_detail(key, p, self.estimate.mode))

    def on_predictions(self, done: int, total: int, images_per_second: float | None = None) -> RunStatus:
        rate = f" · {images_per_second:.1f} images/s" if images_per_second else ""
        return self._update("predictions", done / total if total else 1.0, f"photo {done} of {total}{rate}")

    def finished(self) -> RunStatus:
        last = self._keys[-1] if self._keys else "predictions"
        return self._update(last, 1.0, "done")

    # -- state ------------------------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return self.clock() - self.started

    @property
    def fraction(self) -> float:
        return self._fraction

    def _update(self, key: str, phase_fraction: float, detail: str) -> RunStatus:
        if key in self._keys:
            index = self._keys.index(key)
            self._entered.setdefault(key, self.clock())
            # A phase seen again (cross-validation folds run the phases once per fold) keeps the bar where it is.
            self._phase_index = max(self._phase_index, index)
            if index == self._phase_index:
                within = max(0.0, min(1.0, phase_fraction))
                fraction = sum(self._shares[:index]) + self._shares[index] * within
                if within == 1.0 and index == len(self._keys) - 1:
                    fraction = 1.0  # the shares' sum may round to just below it
                self._fraction = max(self._fraction, min(1.0, fraction))
                planned = sum(self._seconds[:index]) + self._seconds[index] * within
                self._planned_done = max(self._planned_done, planned)
        return RunStatus(
            fraction=self._fraction,
            phase=self._keys[self._phase_index] if self._keys else key,
            phase_number=self._phase_index + 1,
            phase_count=len(self._keys),
            eta_seconds=self.eta_seconds(),
            detail=detail,
        )

    def actual_seconds(self) -> dict[str, float]:
        """Real seconds per phase so far (a phase lasts until the next one is first reported)."""
        seen = sorted(self._entered.items(), key=lambda item: item[1])
        ends = [at for _, at in seen[1:]] + [self.clock()]
        return {key: end - at for (key, at), end in zip(seen, ends, strict=True)}

    def breakdown(self) -> str:
        """Each phase's real time beside its estimate, e.g. 'features: 1 min 30 s (estimated 40 s)'."""
        actual = self.actual_seconds()
        lines = []
        for phase in self.estimate.phases:
            if phase.key in actual:
                took = format_duration(actual[phase.key])
                lines.append(f"{phase.label}: {took} (estimated {format_duration(phase.seconds)})")
        return "\n".join(lines)

    def eta_seconds(self) -> float | None:
        """Estimated seconds left: the plan's remaining share, scaled by the speed seen so far once it means
        something (a few seconds in and a few percent done), so early jitter does not swing the figure."""
        total = self.estimate.total_seconds
        done = self._planned_done
        left = max(0.0, total - done) if self._fraction < 1.0 else 0.0
        elapsed = self.elapsed()
        if elapsed >= 3.0 and done >= 0.05 * total and done > 0:
            left *= max(0.2, min(5.0, elapsed / done))
        return left


def _train_detail(key: str, p: TrainProgress, mode: str) -> str:
    parts: list[str] = []
    if key == "fit" and fit_axis(mode) == "epoch":
        parts.append(f"epoch {p.epoch} of {p.epochs}")
    if key == "warm-up" or (key == "fit" and fit_axis(mode) == "solver step"):
        parts.append(f"solver step {p.step}")
    elif p.steps:
        parts.append(f"batch {p.step}/{p.steps}")
    if p.images_per_second >= 0.05:
        parts.append(f"{p.images_per_second:.1f} images/s")
    if p.loss is not None:
        parts.append(f"loss {p.loss:.3f}")
    if p.val_accuracy is not None:
        parts.append(f"val. acc. {100 * p.val_accuracy:.1f}%")
    return " · ".join(parts)


def chart_x(p: TrainProgress, mode: str) -> float | None:
    """Where a fit report goes on the chart's x-axis (see fit_axis); None for reports the chart does not draw."""
    if TRAINER_PHASES.get(p.phase) != "fit":
        return None
    axis = fit_axis(mode)
    if axis == "epoch":
        return (p.epoch - 1) + (p.step / p.steps if p.steps else 1.0)
    if axis == "solver step":
        return float(p.step)
    return None
