"""Training progress records and a reporter that limits how often a callback fires."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from harapp.ml.errors import TrainingCancelled

Phase = Literal["people", "decoding", "embedding", "warm-up", "training", "evaluating", "predicting", "scoring"]
"""What a job is doing: finding people and their poses, decoding photos into the decoded-image cache, computing (or
reading) features, fitting a fine-tune's head before its epochs, fitting, scoring the held-out images, predicting
the project's images, or scoring label quality."""


@dataclass(frozen=True)
class TrainProgress:
    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float | None
    val_accuracy: float | None
    images_per_second: float
    eta_seconds: float | None
    fraction: float
    phase: Phase


class Reporter:
    """Checks cancellation on every call; forwards progress at most `max_rate` times per second.

    The first and the last report of a phase always go through, so a listener never misses where a phase
    starts or ends.
    """

    def __init__(
        self,
        callback: Callable[[TrainProgress], None] | None,
        cancel: threading.Event | None,
        max_rate: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.cancel = cancel
        self._across_ranks: Callable[[], bool] | None = None
        self._agreed = threading.Event()
        self.min_interval = 1.0 / max_rate
        self.clock = clock
        self._last = -1e9
        self._phase: Phase = "training"
        self._phase_start = clock()
        self._images = 0
        self._sent_in_phase = False

    def agree_on_cancel(self, across_ranks: Callable[[], bool]) -> None:
        """In a job of several ranks: act on a cancel only once every rank has agreed to it (before a batch, see
        harapp.ml.batches.DeviceBatches). A rank that stopped on its own request would leave the others waiting
        for it in a collective. across_ranks() says whether that holds now (not in work rank 0 does alone)."""
        self._across_ranks = across_ranks

    @property
    def cancel_requested(self) -> bool:
        """This process was asked to stop (its vote in the agreement)."""
        return self.cancel is not None and self.cancel.is_set()

    def cancel_agreed(self) -> None:
        """Every rank agreed to stop: the next check_cancel raises on all of them."""
        self._agreed.set()

    def check_cancel(self) -> None:
        if self._agreed.is_set():
            raise TrainingCancelled()
        if self._across_ranks is not None and self._across_ranks():
            return  # a request alone waits for the agreement
        if self.cancel_requested:
            raise TrainingCancelled()

    @property
    def phase(self) -> Phase:
        return self._phase

    def start_phase(self, phase: Phase) -> None:
        self._phase = phase
        self._phase_start = self.clock()
        self._images = 0
        self._sent_in_phase = False

    def step(
        self,
        *,
        epoch: int,
        epochs: int,
        step: int,
        steps: int,
        images: int,
        loss: float | None = None,
        val_accuracy: float | None = None,
        force: bool = False,
    ) -> None:
        self.check_cancel()
        self._images += images
        now = self.clock()
        done = (epoch - 1) * steps + step if steps else 0
        total = epochs * steps
        is_last = done >= total
        must_send = force or is_last or not self._sent_in_phase
        if self.callback is None or (not must_send and now - self._last < self.min_interval):
            return
        self._sent_in_phase = True
        elapsed = max(now - self._phase_start, 1e-9)
        rate = self._images / elapsed
        fraction = done / total if total else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        self._last = now
        self.callback(
            TrainProgress(epoch, epochs, step, steps, loss, val_accuracy, rate, eta, min(fraction, 1.0), self._phase)
        )
