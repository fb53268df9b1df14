"""An honest time estimate before Start: this machine's measured speed times the work a run will do.

:func:`measure_speed` times a tiny probe -- build the model, decode a photo, a few forward and a few
forward+backward batches at the chosen size -- and caches the figures in the user cache folder, once per model
kind, image size and device. :func:`estimate_run` is plain arithmetic over those figures and the phases a run
goes through, cheap enough to redo on every change of the training form. Only :func:`measure_speed` imports
torch (in the caller's thread: the GUI runs it in a worker), so the GUI thread may import this module.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harapp.core.atomic import atomic_write_text
from harapp.core.paths import cache_dir
from harapp.ml.kinds import get_kind
from harapp.ml.views import DEFAULT_VIEWS

PROBE_BATCH = 8
"""The larger of the probe's two batch sizes (the other is 2)."""
SPEED_FILE = "speed.json"
LINEAR_PROBE_FIT_SECONDS = 1.0
"""L-BFGS on a few hundred cached vectors converges in well under a second (bench/README.md)."""

POSE_SECONDS_PER_PHOTO = 0.06
"""Finding a photo's person and pose when nothing is cached: decoding it plus one to three passes of the pose
model (about 35 ms each on a 2-core CPU, bench/README.md)."""

PHASE_LABELS = {
    "prepare": "loading the model",
    "people": "people and poses",
    "decoding": "decoding photos",
    "features": "features",
    "warm-up": "head warm-up",
    "fit": "fit",
    "evaluation": "evaluation",
    "predictions": "project predictions",
}


@dataclass(frozen=True)
class Speed:
    """What the probe measured on this machine for one model kind, image size and device."""

    forward_ips: float
    """Images per second through the network without gradients (features, evaluation, predictions)."""
    train_ips: float
    """Images per second for a training step: forward, backward and optimiser step."""
    decode_seconds: float
    """Per photo: read, decode and resize a 640x480 JPEG as the data pipeline does."""
    build_seconds: float
    device: str
    """The device in words, e.g. 'CPU' or 'CUDA: NVIDIA H200'."""
    decode_workers: int = 0
    """Processes the data loader decodes photos in on this device (0: in the training thread itself)."""
    cache_processes: int = 1
    """Processes that decode photos into the decoded-image cache (one per core)."""
    forward_overhead: float = 0.0
    """Seconds per batch on top of the per-image cost (launching the layers, Python): it is what makes a small
    model at batch 32 many times faster per image than at batch 2."""
    train_overhead: float = 0.0
    measured_at: str = ""

    @property
    def on_gpu(self) -> bool:
        return not self.device.lower().startswith("cpu")

    def seconds_per_image(self, training: bool = False, batch: int = 32, decoded: bool = False) -> float:
        """Per image of a batch; ``decoded``: its pixels come from the decoded-image cache (a memory copy)."""
        overhead = (self.train_overhead if training else self.forward_overhead) / max(1, batch)
        compute = 1.0 / max(1e-6, self.train_ips if training else self.forward_ips) + overhead
        if decoded:
            return compute
        if self.decode_workers > 0:  # decoding overlaps with the device: the slower of the two sets the pace
            return max(compute, self.decode_seconds / self.decode_workers)
        return self.decode_seconds + compute  # one thread decodes, then computes


@dataclass(frozen=True)
class RunSize:
    """How much work a run has: the project's counts the estimate needs."""

    labelled: int
    project_images: int
    epochs: int = 1
    batch_size: int = 32
    cached_features: int = 0
    """Labelled images whose features of this kind are already in the project's cache."""
    val_fraction: float = 0.15
    test_fraction: float = 0.15


@dataclass(frozen=True)
class Phase:
    key: str
    """prepare | people | decoding | features | warm-up | fit | evaluation | predictions"""
    seconds: float
    detail: str = ""

    @property
    def label(self) -> str:
        return PHASE_LABELS.get(self.key, self.key)


@dataclass(frozen=True)
class RunEstimate:
    phases: tuple[Phase, ...]
    device: str
    mode: str
    upper_bound: bool = False
    """True when early stopping may end the fit sooner (epoch-based modes)."""

    @property
    def total_seconds(self) -> float:
        return sum(p.seconds for p in self.phases)

    def phase_keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.phases)

    def where(self) -> str:
        return f"on this {'GPU' if not self.device.lower().startswith('cpu') else 'CPU'}"

    def summary(self) -> str:
        """One line for the form, e.g. 'About 2 min on this CPU' or '… : a GPU or the linear probe is faster'."""
        prefix = "Up to about" if self.upper_bound else "About"
        text = f"{prefix} {format_duration(self.total_seconds)} {self.where()}"
        slow = self.total_seconds > 10 * 60 and self.device.lower().startswith("cpu")
        if slow and self.mode in ("fine-tune", "scratch"):
            text += ": a GPU or the linear probe is faster"
        return text

    def breakdown(self) -> str:
        """Each phase with its share, for a tooltip."""
        lines = [f"{p.label}: {format_duration(p.seconds)}{f' ({p.detail})' if p.detail else ''}" for p in self.phases]
        return "\n".join([*lines, f"measured speed of {self.device}"])


def format_duration(seconds: float | None) -> str:
    """'45 s', '3 min', '1 h 20 min': rounded the way a person reads an estimate."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    if seconds < 1:
        return "under 1 s"
    if seconds < 60:
        return f"{int(round(seconds))} s"
    minutes = seconds / 60
    if minutes < 10:
        whole, rest = divmod(int(round(seconds)), 60)
        return f"{whole} min {rest:02d} s" if whole < 3 else f"{int(round(minutes))} min"
    if minutes < 60:
        return f"{int(round(minutes))} min"
    hours, minutes_left = divmod(int(round(minutes)), 60)
    return f"{hours} h {minutes_left:02d} min"


# -- phases and arithmetic ------------------------------------------------------------------------------------


def run_phases(
    kind: str, mode: str, pretrained: bool = True, views: Sequence[str] = DEFAULT_VIEWS, decoded_cache: bool = True
) -> tuple[str, ...]:
    """The phases a training run goes through, in order (the trainer's own order, see harapp.ml.trainer)."""
    people = ("people",) if "person" in views or "pose" in views else ()
    # Photos are decoded into the decoded-image cache before their features or epochs need them.
    decoding = ("decoding",) if decoded_cache else ()
    if mode in ("zero-shot", "linear-probe"):
        return ("prepare", *people, *decoding, "features", "fit", "predictions")
    if mode == "fine-tune" and not get_kind(kind).prompt_head and pretrained:
        # LP-FT: the head is fitted on frozen (cached) features before the backbone learns.
        return ("prepare", *people, *decoding, "features", "warm-up", "fit", "evaluation", "predictions")
    return ("prepare", *people, *decoding, "fit", "evaluation", "predictions")


def _split(size: RunSize) -> tuple[int, int, int]:
    n = max(0, size.labelled)
    test = int(round(n * size.test_fraction))
    val = int(round(n * size.val_fraction))
    return max(0, n - val - test), val, test


def estimate_run(
    kind: str,
    mode: str,
    size: RunSize,
    speed: Speed,
    pretrained: bool = True,
    views: Sequence[str] = DEFAULT_VIEWS,
    decoded_cache: bool = True,
) -> RunEstimate:
    """Seconds per phase for a run of this kind and mode on this many images, at the measured speed.

    With the decoded-image cache (``decoded_cache``) the labelled photos a run reads are decoded once, by every
    core, and its features, epochs and evaluation read pixels; a photo already in the cache from an earlier run is
    not decoded again, which this estimate does not know (it counts it as decoded now).
    """
    train, val, test = _split(size)
    image_views = max(1, sum(1 for v in views if v in ("whole", "person")))
    per_forward = image_views * speed.seconds_per_image(batch=size.batch_size, decoded=decoded_cache)
    per_train = image_views * speed.seconds_per_image(training=True, batch=size.batch_size, decoded=decoded_cache)
    per_predict = image_views * speed.seconds_per_image(batch=16)
    per_predict_cached = image_views * speed.seconds_per_image(batch=16, decoded=decoded_cache)
    epochs = max(1, size.epochs)
    frozen = mode in ("zero-shot", "linear-probe")
    cached = min(size.cached_features, size.labelled)
    unlabelled = max(0, size.project_images - size.labelled)
    phases: list[Phase] = []
    for key in run_phases(kind, mode, pretrained, views, decoded_cache):
        if key == "prepare":
            phases.append(Phase(key, speed.build_seconds))
        elif key == "people":
            todo = size.labelled - cached
            phases.append(
                Phase(key, todo * POSE_SECONDS_PER_PHOTO, f"{todo} photos" + (f", {cached} cached" if cached else ""))
            )
        elif key == "decoding":
            # A linear probe decodes only the photos whose features are not cached; an epoch-based run all of them.
            todo = size.labelled - cached if frozen else size.labelled
            seconds = todo * image_views * speed.decode_seconds / max(1, speed.cache_processes)
            phases.append(Phase(key, seconds, f"{todo} photos"))
        elif key == "features":
            wanted = size.labelled if frozen else train
            todo = max(0, wanted - min(cached, wanted))
            detail = f"{todo} photos" + (f", {wanted - todo} cached" if wanted - todo else "")
            phases.append(Phase(key, todo * per_forward, detail))
        elif key == "warm-up":
            phases.append(Phase(key, LINEAR_PROBE_FIT_SECONDS))
        elif key == "fit" and frozen:
            phases.append(Phase(key, LINEAR_PROBE_FIT_SECONDS, "on cached features"))
        elif key == "fit":
            seconds = epochs * (train * per_train + val * per_forward)
            phases.append(Phase(key, seconds, f"{epochs} epochs of {train} photos"))
        elif key == "evaluation":
            phases.append(Phase(key, test * per_forward, f"{test} photos"))
        elif key == "predictions" and frozen:
            # The labelled photos' features are cached by now; only the unlabelled ones are computed.
            todo = unlabelled if size.cached_features < size.project_images else 0
            seconds = todo * (per_predict + POSE_SECONDS_PER_PHOTO)
            phases.append(Phase(key, seconds, f"{size.project_images} photos, {todo} not cached"))
        elif key == "predictions":
            # The labelled photos are in the decoded-image cache by now; the others are decoded as they are read.
            seconds = size.labelled * per_predict_cached + unlabelled * per_predict
            phases.append(Phase(key, seconds, f"{size.project_images} photos"))
    return RunEstimate(tuple(phases), speed.device, mode, upper_bound=mode in ("scratch", "fine-tune"))


# -- measuring and caching ------------------------------------------------------------------------------------


def speed_key(kind: str, image_size: int, device: str = "auto") -> str:
    """Cache key of a measurement; CLIP always runs at its own size, whatever the form says."""
    size = "native" if get_kind(kind).own_image_size else str(int(image_size))
    return f"{kind}@{size}/{device}/cpus{os.cpu_count() or 1}"


def _speed_file() -> Path:
    return cache_dir() / SPEED_FILE


def _read_all() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_speed_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_speed(kind: str, image_size: int, device: str = "auto") -> Speed | None:
    """The cached measurement, or None when this kind, size and device were never measured here."""
    raw = _read_all().get(speed_key(kind, image_size, device))
    if not isinstance(raw, dict):
        return None
    try:
        return Speed(**raw)
    except TypeError:  # written by another version: measure again
        return None


def save_speed(kind: str, image_size: int, device: str, speed: Speed) -> None:
    data = _read_all()
    data[speed_key(kind, image_size, device)] = asdict(speed)
    with contextlib.suppress(OSError):  # a cache: failing to write it only means measuring again next time
        atomic_write_text(_speed_file(), json.dumps(data, indent=1, sort_keys=True))


def measure_speed(
    kind: str,
    image_size: int,
    device: str = "auto",
    batch: int = PROBE_BATCH,
    cancel: threading.Event | None = None,
    photos: Sequence[Path] = (),
) -> Speed:
    """Time the probe on this machine (seconds: a few batches) and cache the result. Imports torch.

    ``photos``: a few of the project's own photos to time decoding on (a generated one otherwise: how long a JPEG
    takes to decode depends on its content). ``cancel`` is checked between the probe's stages
    (TrainingCancelled): a closing window waits a second, not the whole probe."""
    import torch

    from harapp.ml.config import TrainConfig
    from harapp.ml.errors import TrainingCancelled

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled()

    from harapp.ml.decode import Entry, Region, decode_entry
    from harapp.ml.decode_workers import default_processes
    from harapp.ml.device import autocast, describe_device, loader_workers, resolve_device
    from harapp.ml.models import build_model
    from harapp.ml.photo_views import PhotoViews

    target = resolve_device(device)
    # Random weights: the speed is the architecture's, and nothing needs downloading to measure it.
    # One image view: the estimate multiplies the per-view cost by the views a run has.
    config = TrainConfig(
        model_kind=kind, mode="fine-tune" if "fine-tune" in get_kind(kind).modes else "scratch", views=("whole",)
    )
    config = TrainConfig.from_dict({**config.to_dict(), "image_size": image_size, "pretrained": False})
    started = time.perf_counter()
    built = build_model(config, ("a", "b"), init_head=False)
    build_seconds = time.perf_counter() - started
    model = built.model.to(target)
    check()

    with tempfile.TemporaryDirectory(prefix="harapp-speed-") as folder:
        sample = [Path(p) for p in photos if Path(p).is_file()][:3]
        if not sample:
            sample = [Path(folder) / "probe.jpg"]
            _photo_like().save(sample[0], quality=90)
        pre = built.preprocess
        # The whole photo as the decoded-image cache (and a loader without it) decodes it for this model.
        whole = PhotoViews.of(pre, ("whole",))
        region = Region(None, whole.fit, whole.fraction)
        entries = [Entry(str(path), region) for path in sample]
        decode_entry(entries[0], pre.image_size, pre.interpolation)  # the first decode pays for lazy imports
        times = []
        for entry in entries:
            best = math.inf
            for _ in range(2):  # the second read finds the file in the disk cache, as most reads of a run do
                begin = time.perf_counter()
                decode_entry(entry, pre.image_size, pre.interpolation)
                best = min(best, time.perf_counter() - begin)
            times.append(best)
        decode_seconds = sum(times) / len(times)

    check()
    side = built.preprocess.image_size
    small, large = 2, max(4, batch)
    inputs = {n: torch.randn(n, 3, side, side, device=target) for n in (small, large)}
    targets = {n: torch.zeros(n, dtype=torch.long, device=target) for n in (small, large)}

    def fastest(step: Callable[[int], object], n: int, repeats: int = 2) -> float:
        """The quickest of a few timed calls: other programs' load only ever makes a call slower."""
        step(n)  # warm-up: allocations, kernel selection
        best = math.inf
        for _ in range(repeats):
            check()
            if target.type == "cuda":
                torch.cuda.synchronize(target)
            begin = time.perf_counter()
            step(n)
            if target.type == "cuda":
                torch.cuda.synchronize(target)
            best = min(best, time.perf_counter() - begin)
        return best

    def rates(step: Callable[[int], object]) -> tuple[float, float]:
        """(images/s of the marginal image, seconds of fixed cost per batch), from two batch sizes: a small
        model's step is mostly fixed cost, so one batch size alone would misjudge every other one."""
        t_small, t_large = fastest(step, small), fastest(step, large)
        per_image = max((t_large - t_small) / (large - small), 0.25 * t_large / large)
        overhead = max(0.0, t_large - large * per_image)
        return 1.0 / max(1e-9, per_image), overhead

    model.eval()

    def forward(n: int) -> None:
        with torch.no_grad(), autocast(target):
            model.features(inputs[n])

    forward_ips, forward_overhead = rates(forward)
    model.train()
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def train_step(n: int) -> None:
        with autocast(target):
            loss = torch.nn.functional.cross_entropy(model(inputs[n]).float(), targets[n])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    train_ips, train_overhead = rates(train_step)
    speed = Speed(
        forward_ips=forward_ips,
        train_ips=train_ips,
        decode_seconds=decode_seconds,
        build_seconds=build_seconds,
        device=describe_device(device),
        decode_workers=loader_workers(target),
        cache_processes=default_processes(1 << 20),
        forward_overhead=forward_overhead,
        train_overhead=train_overhead,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    save_speed(kind, image_size, device, speed)
    return speed


def _photo_like() -> Any:
    """A 640x480 picture with a photo's mix of smooth areas and detail (pure noise decodes many times slower than
    a real photo, a flat image many times faster)."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    draw = ImageDraw.Draw(image)
    for i in range(40):
        x, y = (i * 97) % 600, (i * 53) % 440
        draw.rectangle((x, y, x + 40 + i % 30, y + 30 + i % 20), fill=((i * 40) % 255, (i * 70) % 255, (i * 90) % 255))
    noise = Image.effect_noise((640, 480), 24).convert("RGB")
    return Image.blend(image, noise, 0.15).filter(ImageFilter.SMOOTH)
