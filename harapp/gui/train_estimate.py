"""The GUI side of time estimates: measure this machine's speed in a worker, once per kind, size and device.

The measurement imports torch and runs a few batches (seconds), so it never runs on the GUI thread and never
while a training run is using the cores; the figures are cached on disk by harapp.ml.estimate, so later starts
and later form changes answer at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from harapp.core.store import Project
from harapp.gui.workers import JobHandle, run_callable, start_worker
from harapp.ml import estimate
from harapp.ml.config import TrainConfig
from harapp.ml.estimate import RunEstimate, RunSize, Speed, estimate_run

log = logging.getLogger(__name__)


class SpeedMeter(QObject):
    speed_ready = Signal(str, int, object)
    """kind, image size, Speed: a measurement arrived (or was in the cache)."""
    measuring = Signal(str, int)
    failed = Signal(str, int, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.device = "auto"
        self.photos: tuple[Path, ...] = ()
        """A few of the project's photos: decoding is timed on them (their content sets the pace)."""
        self.job: JobHandle | None = None
        self._wanted: tuple[str, int] | None = None
        self._measuring: tuple[str, int] | None = None
        self._failed: set[tuple[str, int]] = set()

    def speed(self, kind: str, image_size: int) -> Speed | None:
        """The cached figures, or None (then :meth:`request` measures them)."""
        return estimate.load_speed(kind, image_size, self.device)

    def request(self, kind: str, image_size: int) -> Speed | None:
        """The figures now when cached; otherwise start (or queue) a measurement and return None."""
        cached = self.speed(kind, image_size)
        if cached is not None:
            return cached
        if (kind, image_size) in self._failed or (kind, image_size) == self._measuring:
            return None
        self._wanted = (kind, image_size)
        self._start_next()
        return None

    def busy(self) -> bool:
        return self.job is not None and self.job.is_running()

    def _start_next(self) -> None:
        if self.busy():
            return
        self._measuring = None
        if self._wanted is None:
            return
        kind, size = self._wanted
        self._wanted = None
        if self.speed(kind, size) is not None:  # measured meanwhile
            return
        self._measuring = (kind, size)
        device, photos = self.device, self.photos
        self.measuring.emit(kind, size)

        def measure(cancel: threading.Event) -> Speed:
            return estimate.measure_speed(kind, size, device, cancel=cancel, photos=photos)

        job = start_worker(run_callable(measure), name="harapp-speed", parent=self)
        job.finished.connect(lambda speed: self.speed_ready.emit(kind, size, speed))
        job.failed.connect(lambda message: self._on_failed(kind, size, message))
        job.done.connect(self._start_next)  # the form may have changed while this one ran
        self.job = job

    def _on_failed(self, kind: str, size: int, message: str) -> None:
        log.warning("could not measure the speed of %s at %s px: %s", kind, size, message)
        self._failed.add((kind, size))
        self.failed.emit(kind, size, message)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        self._wanted = None
        return self.job.cancel_and_wait(timeout_ms) if self.busy() and self.job is not None else True


PLACEHOLDER_SPEED = Speed(forward_ips=10.0, train_ips=4.0, decode_seconds=0.01, build_seconds=3.0, device="CPU")
"""Only weighs the phases of a run started before this machine's speed was measured; never shown as a time."""


class RunEstimator(QObject):
    """How long a run will take here: the project's counts, this machine's measured speed, harapp.ml.estimate."""

    changed = Signal()
    """A measurement arrived (or failed): estimate again."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.meter = SpeedMeter(self)
        self.meter.speed_ready.connect(lambda *_: self.changed.emit())
        self.meter.failed.connect(lambda *_: self.changed.emit())
        self._project: Project | None = None
        self._counts: tuple[int, RunSize] | None = None

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self._counts = None

    def run_size(self, config: TrainConfig) -> RunSize:
        """The work a run of this config has on the project (counted once per label revision)."""
        project = self._project
        assert project is not None
        revision = project.label_revision()
        if self._counts is None or self._counts[0] != revision:  # counting reads every label: once per revision
            items = project.snapshot().items
            self._counts = (revision, RunSize(len(items), project.count_images()))
            self.meter.photos = tuple(item.path for item in items[:: max(1, len(items) // 3)][:3])
        base = self._counts[1]
        return RunSize(
            base.labelled,
            base.project_images,
            config.epochs,
            config.batch_size,
            self._cached_features(project, config),
            config.val_fraction,
            config.test_fraction,
        )

    @staticmethod
    def _cached_features(project: Project, config: TrainConfig) -> int:
        """Images with cached features this run can use: counted under the kind's keys, but only when a model of
        this kind was trained at this size here (the exact key needs the model built; another size's features,
        e.g. those of an older default, would make the estimate far too short)."""
        sizes = {m.config.get("image_size") for m in project.models() if m.kind == config.model_kind}
        return project.embedding_count(f"{config.model_kind}:") if config.image_size in sizes else 0

    def estimate(self, config: TrainConfig, measure: bool = True) -> RunEstimate | None:
        """The estimate, or None while this kind and size are not measured (``measure``: start measuring)."""
        speed = self.meter.speed(config.model_kind, config.image_size)
        if speed is None:
            if measure:
                self.meter.request(config.model_kind, config.image_size)
            return None
        return estimate_run(
            config.model_kind, config.mode, self.run_size(config), speed, config.pretrained, config.views,
            config.decoded_cache,
        )  # fmt: skip

    def plan(self, config: TrainConfig) -> tuple[RunEstimate, bool]:
        """The phases of a run about to start, and whether their seconds were measured here (else placeholder
        figures only weigh the phases against each other: the time left then follows the run's real speed)."""
        speed = self.meter.speed(config.model_kind, config.image_size)
        plan = estimate_run(
            config.model_kind, config.mode, self.run_size(config), speed or PLACEHOLDER_SPEED, config.pretrained,
            config.views, config.decoded_cache,
        )  # fmt: skip
        return plan, speed is not None

    def pause(self) -> None:
        """A run starts: a probe still measuring would compete with it for the cores."""
        self.meter.shutdown(0)

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self.meter.shutdown(timeout_ms)
