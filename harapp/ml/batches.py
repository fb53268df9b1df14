"""Batches for training and feature extraction: each sample's views as uint8 pixels, read from the decoded-image
cache (or decoded now where the cache lacks them), stacked by a loader, then moved to the device, augmented as
whole batches there, and normalised.

A sample is a set of named views of one photo (ViewSet): today's models read one, "image" (the whole photo, or
the legacy largest-person crop); a view is only a Region, so a person view is one more entry of the same cache.
Batches come out as (x, y, positions): x is a tensor for a single "image" view and a dict of tensors otherwise
(views plus any per-sample vectors), y the class indices and positions the samples' places in the item list.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, get_worker_info

from harapp.core.types import LabelledItem, LabelSnapshot
from harapp.ml import distributed
from harapp.ml.data import init_worker
from harapp.ml.decoded_cache import (
    DecodedCache,
    Entry,
    Region,
    SlotReader,
    cache_folder,
    decode_entry,
    limit_bytes_from_settings,
)
from harapp.ml.device import loader_workers
from harapp.ml.errors import TrainingCancelled
from harapp.ml.models import Preprocess
from harapp.ml.progress import Reporter

RawBatch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, torch.Tensor]
"""What a loader yields: uint8 views (B, S, S, 3) by name, float vectors (B, D) by name, labels, positions."""


class ViewSet(Protocol):
    """The views each sample shows a model: their names, and the region of a photo each one is cut from."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def regions(self, item: LabelledItem) -> tuple[Region, ...]: ...

    def vectors(self, items: Sequence[LabelledItem]) -> dict[str, npt.NDArray[np.float32]]:
        """Per-sample float vectors that travel with the views (pose features, say): name -> (n, D)."""
        ...


@dataclass(frozen=True)
class SingleView:
    """Today's input: one view named "image", the whole photo as the model's preprocessing fits it, or (the
    legacy person_crop) the largest person box with a margin, clipped to the photo, as ml.images crops it."""

    fit: str = "squash"
    fraction: float = 1.0
    person_crop: bool = False
    names: tuple[str, ...] = field(default=("image",), init=False)

    @classmethod
    def of(cls, pre: Preprocess, person_crop: bool) -> SingleView:
        fit = "squash" if pre.resize_mode == "squash" else "center"
        return cls(fit, pre.crop_pct if fit == "center" else 1.0, person_crop)

    def regions(self, item: LabelledItem) -> tuple[Region, ...]:
        box = _largest_box_crop(item) if self.person_crop else None
        return (Region(box, "squash" if self.fit == "squash" else "center", self.fraction),)

    def vectors(self, items: Sequence[LabelledItem]) -> dict[str, npt.NDArray[np.float32]]:
        return {}


def _largest_box_crop(item: LabelledItem, margin: float = 0.15) -> tuple[float, float, float, float] | None:
    """ml.images.crop_largest_box's rectangle, from the photo size the project knows; None: the whole photo."""
    usable = [b for b in item.person_boxes if b[2] > 1 and b[3] > 1]
    if not usable or item.width <= 0 or item.height <= 0:
        return None
    x, y, w, h = max(usable, key=lambda b: b[2] * b[3])
    mx, my = w * margin, h * margin
    left, top = max(0, int(x - mx)), max(0, int(y - my))
    right, bottom = min(item.width, int(round(x + w + mx))), min(item.height, int(round(y + h + my)))
    if right - left < 2 or bottom - top < 2:
        return None
    return (float(left), float(top), float(right - left), float(bottom - top))


class ViewDataset(Dataset):
    """Samples as uint8 views, fetched a batch at a time (the sampler hands over lists of positions)."""

    def __init__(
        self,
        items: Sequence[LabelledItem],
        views: ViewSet,
        size: int,
        interpolation: str,
        reader: SlotReader | None = None,
        slots: npt.NDArray[np.int64] | None = None,
    ) -> None:
        self.items = tuple(items)
        self.names = views.names
        self.size = size
        self.interpolation = interpolation
        self.entries = [[Entry(str(it.path), region) for region in views.regions(it)] for it in self.items]
        self.reader = reader
        self.slots = slots if slots is not None else np.full((len(self.items), len(self.names)), -1, np.int64)
        self.labels = np.array([it.class_index for it in self.items], dtype=np.int64)
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in views.vectors(self.items).items()}
        self.pin_memory = False
        """Read batches straight into page-locked memory (the prefetch thread does, for a CUDA device)."""

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, positions: Sequence[int]) -> RawBatch:
        index = np.asarray(positions, dtype=np.int64)
        views = {}
        for v, name in enumerate(self.names):
            batch = torch.empty((len(index), self.size, self.size, 3), dtype=torch.uint8, pin_memory=self.pin_memory)
            if get_worker_info() is not None:
                batch.share_memory_()  # filled in place: sending it to the training process then copies nothing
            pixels = batch.numpy()
            slots = self.slots[index, v]
            cached = slots >= 0
            if cached.all():
                assert self.reader is not None
                self.reader.read(slots, pixels)
            elif cached.any():
                assert self.reader is not None
                hits = np.empty((int(cached.sum()), self.size, self.size, 3), dtype=np.uint8)
                self.reader.read(slots[cached], hits)
                pixels[cached] = hits
            for j in np.flatnonzero(~cached):
                pixels[j] = decode_entry(self.entries[index[j]][v], self.size, self.interpolation)
            views[name] = batch
        vectors = {k: torch.from_numpy(v[index]) for k, v in self.vectors.items()}
        return views, vectors, torch.from_numpy(self.labels[index]), torch.from_numpy(index)


class BatchAugment:
    """Random resized crops, flips and colour jitter with parameters drawn per sample, applied to a whole batch
    in a few kernels (on the GPU when the batch is there).

    torchvision.transforms.v2 draws one set of parameters per call, so on a batch tensor every photo would get
    the same crop and flip; this draws them per sample (with the distributions of v2.RandomResizedCrop(scale=
    (0.6, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip and ColorJitter(0.2, 0.2, 0.2, 0.02), as the PIL training
    transform uses) and applies them as one grid_sample and one 3x3 colour matrix per sample. The crops come
    from the cached model-size image, so a crop is upsampled by at most 1/sqrt(0.6).
    """

    def __init__(self, seed: int, scale: tuple[float, float] = (0.6, 1.0), jitter: float = 0.2, hue: float = 0.02):
        self.generator = torch.Generator().manual_seed(seed)
        self.scale = scale
        self.log_ratio = (math.log(3 / 4), math.log(4 / 3))
        self.jitter = jitter
        self.hue = hue

    def _uniform(self, n: int, low: float, high: float, *shape: int) -> torch.Tensor:
        return torch.empty(n, *shape).uniform_(low, high, generator=self.generator)

    def _crop_boxes(self, n: int, side: int) -> torch.Tensor:
        """(n, 4) crops x0, y0, w, h in pixels: v2.RandomResizedCrop's rule (ten tries, else the whole image)."""
        area = side * side * self._uniform(n, *self.scale, 10)
        ratio = torch.exp(self._uniform(n, *self.log_ratio, 10))
        w = torch.sqrt(area * ratio).round()
        h = torch.sqrt(area / ratio).round()
        ok = (w > 0) & (w <= side) & (h > 0) & (h <= side)
        first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
        rows = torch.arange(n)
        w = torch.where(first >= 0, w[rows, first.clamp_min(0)], torch.full((n,), float(side)))
        h = torch.where(first >= 0, h[rows, first.clamp_min(0)], torch.full((n,), float(side)))
        x0 = torch.floor(torch.rand(n, generator=self.generator) * (side - w + 1))
        y0 = torch.floor(torch.rand(n, generator=self.generator) * (side - h + 1))
        return torch.stack([x0, y0, w, h], 1)

    def _colour(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per sample: the brightness and contrast factors (n,) and a saturation-and-hue matrix (n, 3, 3)."""
        low, high = 1 - self.jitter, 1 + self.jitter
        brightness, contrast, saturation = (self._uniform(n, low, high) for _ in range(3))
        angle = self._uniform(n, -self.hue, self.hue) * 2 * math.pi
        gray = torch.tensor(_GRAY)
        # Saturation blends with grey; hue turns the chroma plane of YIQ, a linear stand-in for HSV's hue shift.
        sat = saturation[:, None, None] * torch.eye(3) + (1 - saturation)[:, None, None] * gray[None, None, :]
        cos, sin = torch.cos(angle), torch.sin(angle)
        turn = torch.zeros(n, 3, 3)
        turn[:, 0, 0] = 1
        turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = cos, -sin, sin, cos
        yiq = torch.tensor(_RGB_TO_YIQ)
        return brightness, contrast, torch.linalg.inv(yiq) @ turn @ yiq @ sat

    def _grid(self, boxes: torch.Tensor, flip: torch.Tensor, side: int, device: torch.device) -> torch.Tensor:
        """grid_sample's sampling grid for axis-aligned crops: x depends on the column only, y on the row only,
        so it is built by broadcasting (affine_grid's general matrix product is several times slower on a CPU)."""
        n = len(boxes)
        # Output pixel centres in [-1, 1]; a crop (x0, w) spans [-1 + 2 x0 / S, -1 + 2 (x0 + w) / S] of the input.
        u = (torch.arange(side, dtype=torch.float32) + 0.5) * (2 / side) - 1
        scale_x = torch.where(flip, -1.0, 1.0) * boxes[:, 2] / side
        gx = scale_x[:, None] * u + ((2 * boxes[:, 0] + boxes[:, 2]) / side - 1)[:, None]
        gy = (boxes[:, 3] / side)[:, None] * u + ((2 * boxes[:, 1] + boxes[:, 3]) / side - 1)[:, None]
        gx, gy = gx.to(device), gy.to(device)
        return torch.stack((gx[:, None, :].expand(n, side, side), gy[:, :, None].expand(n, side, side)), dim=-1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) floats in [0, 1] on any device; returns the augmented batch in [0, 1], same shape.

        Brightness, contrast, saturation and hue are applied as one affine map per sample (torchvision clamps to
        [0, 1] after each; here only at the end, which differs only where a pixel leaves the range mid-way).
        """
        n, _, side, _ = x.shape
        if n == 0:
            return x
        device = x.device
        boxes = self._crop_boxes(n, side)
        flip = torch.rand(n, generator=self.generator) < 0.5
        brightness, contrast, matrix = self._colour(n)
        grid = self._grid(boxes, flip, side, device).to(x.dtype)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        # contrast(brightness(x)) = c b x + (1 - c) b mean_grey(x); the saturation-hue matrix keeps greys grey.
        mean = torch.einsum("bchw,c->b", x, torch.tensor(_GRAY, device=device)) / (side * side)
        b, c = brightness.to(device), contrast.to(device)
        linear = (c * b)[:, None, None] * matrix.to(device)
        offset = ((1 - c) * b * mean)[:, None, None]
        out = torch.baddbmm(offset.to(x.dtype), linear.to(x.dtype), x.reshape(n, 3, side * side))
        return out.view(n, 3, side, side).clamp_(0, 1)


_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))


class BatchPrep:
    """uint8 views on the host -> normalised float tensors on the device (augmented when training).

    Without augmentation the arithmetic is ToTensor's and Normalize's, element for element, so a photo gives
    the model the very numbers the predictor's PIL path gives it.
    """

    def __init__(self, pre: Preprocess, device: torch.device, augment: BatchAugment | None) -> None:
        self.device = device
        self.mean = torch.tensor(pre.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.mean_hwc, self.std_hwc = self.mean.view(3), self.std.view(3)
        self.augment = augment

    def image(self, pixels: torch.Tensor) -> torch.Tensor:
        pixels = pixels.to(self.device, non_blocking=True)
        if self.augment is None:
            # In place on one channels-last buffer, then one copy to (B, 3, S, S).
            x = pixels.to(torch.float32).div_(255).sub_(self.mean_hwc).div_(self.std_hwc)
            return x.permute(0, 3, 1, 2).contiguous()
        x = self.augment(pixels.permute(0, 3, 1, 2).to(torch.float32).div_(255).contiguous())
        return x.sub_(self.mean).div_(self.std)

    def __call__(self, views: Mapping[str, torch.Tensor], vectors: Mapping[str, torch.Tensor]) -> Any:
        if list(views) == ["image"] and not vectors:
            return self.image(views["image"])
        out = {name: self.image(pixels) for name, pixels in views.items()}
        out.update({name: v.to(self.device, non_blocking=True) for name, v in vectors.items()})
        return out


class PrefetchThread:
    """Batches read one ahead of another by a background thread, as an iterable like a DataLoader.

    For a cache that holds every view: a batch is then one memory copy from the memory map, which numpy does
    without holding the GIL, so one thread keeps up with a GPU (about 10,000 img/s at 224 px on one core here).
    A worker process would have to hand each batch over through new shared memory, about five times slower.
    """

    def __init__(self, data: ViewDataset, batches: BatchSampler, depth: int = 3) -> None:
        self.data = data
        self.batches = batches
        self.depth = depth

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[RawBatch]:
        ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=self.depth)
        stop = threading.Event()

        def put(kind: str, value: Any) -> None:
            while not stop.is_set():
                try:
                    ready.put((kind, value), timeout=0.1)
                    return
                except queue.Full:
                    continue

        def read() -> None:
            try:
                for positions in self.batches:
                    if stop.is_set():
                        return
                    put("batch", self.data[positions])
                put("end", None)
            except BaseException as exc:  # handed to the consumer, which raises it
                put("error", exc)

        thread = threading.Thread(target=read, name="harapp-batch-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = ready.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()
            thread.join()


class DeviceBatches:
    """Iterates a loader's batches as (x, y, positions) with x and y on the device; each pass is a new epoch of
    its sampler (a new shuffle). Across ranks, a cancel on any rank is agreed before each batch, so every rank
    stops at the same step."""

    def __init__(
        self,
        loader: DataLoader | PrefetchThread,
        sampler: DistributedSampler,
        prep: BatchPrep,
        cancel: threading.Event | None = None,
    ) -> None:
        self.loader = loader
        self.sampler = sampler
        self.prep = prep
        self.cancel = cancel
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        cancel = self.cancel if distributed.ranks().world > 1 else None
        for views, vectors, labels, positions in self.loader:
            if cancel is not None and distributed.any_rank(cancel.is_set()):
                cancel.set()
            yield self.prep(views, vectors), labels.to(self.prep.device, non_blocking=True), positions


# -- the run's decoded-image cache ------------------------------------------------------------------------------


class RunImages:
    """The decoded-image cache of one training run: which entries it has, built as the run first needs them.

    On the first training loader every labelled item of the run is cached (train, val and test are all read
    soon); otherwise only the items asked for (a linear probe with cached features decodes nothing). Across
    ranks, rank 0 of each machine builds (the file lock keeps machines that share a file system from building
    twice) while the others wait, and all ranks then read what the cache holds.
    """

    def __init__(self, snapshot: LabelSnapshot, reporter: Reporter, processes: int | None = None) -> None:
        self.snapshot = snapshot
        self.reporter = reporter
        self.processes = processes
        # Rank 0's setting, so that every rank agrees on whether there is a cache (and on its collectives).
        limit = distributed.from_leader(limit_bytes_from_settings())
        self.folder: Path | None = (
            cache_folder(snapshot.project_path) if snapshot.project_path is not None and limit > 0 else None
        )
        self.limit_bytes = limit
        self._known: dict[tuple[int, str], dict[tuple[str, str], int]] = {}
        self.notes: list[str] = []

    def slots(
        self, items: Sequence[LabelledItem], views: ViewSet, size: int, interpolation: str, all_items: bool
    ) -> tuple[SlotReader | None, npt.NDArray[np.int64] | None]:
        """A reader and the slot of each item's views (-1: decode on the fly); (None, None) without a cache."""
        if self.folder is None or not items:
            return None, None
        cache = DecodedCache(self.folder, size, interpolation)
        known = self._known.setdefault((size, interpolation), {})
        wanted = self.snapshot.items if all_items else items
        entries = {
            (e.path, e.region.key()): e for it in wanted for e in (Entry(str(it.path), r) for r in views.regions(it))
        }
        missing = [e for key, e in entries.items() if key not in known]
        if missing:
            slots = self._ensure(cache, missing)
            known.update({(e.path, e.region.key()): int(s) for e, s in zip(missing, slots, strict=True)})
        table = np.array(
            [[known[(str(it.path), r.key())] for r in views.regions(it)] for it in items], dtype=np.int64
        ).reshape(len(items), len(views.names))
        return (cache.reader() if (table >= 0).any() else None), table

    def _ensure(self, cache: DecodedCache, entries: list[Entry]) -> npt.NDArray[np.int64]:
        ranks = distributed.ranks()
        builds = ranks.local_rank == 0
        outcome: BaseException | None = None
        slots = np.full(len(entries), -1, np.int64)
        if builds:
            try:
                slots = self._build(cache, entries)
            except BaseException as exc:  # every rank must still reach the agreement below
                outcome = exc
        if ranks.world > 1:
            cancelled = distributed.any_rank(isinstance(outcome, TrainingCancelled))
            failed = distributed.any_rank(outcome is not None and not isinstance(outcome, TrainingCancelled))
            if outcome is not None:
                raise outcome
            if cancelled:
                raise TrainingCancelled()
            if failed:
                raise distributed.PeerFailed("another rank failed while decoding photos into the cache")
            if not builds:
                slots = cache.lookup(entries)
        elif outcome is not None:
            raise outcome
        return slots

    def _build(self, cache: DecodedCache, entries: list[Entry]) -> npt.NDArray[np.int64]:
        previous = self.reporter.phase
        self.reporter.start_phase("decoding")
        reported = [0]

        def progress(done: int, total: int) -> None:
            self.reporter.step(epoch=1, epochs=1, step=done, steps=total, images=done - reported[0])
            reported[0] = done

        try:
            ensured = cache.ensure(entries, limit_bytes=self.limit_bytes, processes=self.processes, progress=progress)
        finally:
            self.reporter.start_phase(previous)
        if ensured.note:
            self.notes.append(ensured.note)
        return ensured.slots


_RUN: contextvars.ContextVar[RunImages | None] = contextvars.ContextVar("harapp_run_images", default=None)


@contextlib.contextmanager
def run_images(snapshot: LabelSnapshot, reporter: Reporter) -> Iterator[RunImages]:
    """Make the run's decoded-image cache the one the loaders of this thread use (nested runs share it)."""
    active = _RUN.get()
    if active is not None and active.snapshot is snapshot:
        yield active
        return
    run = RunImages(snapshot, reporter)
    token = _RUN.set(run)
    try:
        yield run
    finally:
        _RUN.reset(token)


def current_run() -> RunImages | None:
    return _RUN.get()


# -- loaders ----------------------------------------------------------------------------------------------------


def image_batches(
    items: Sequence[LabelledItem],
    pre: Preprocess,
    views: ViewSet,
    *,
    batch_size: int,
    device: torch.device,
    train: bool,
    augment: bool,
    seed: int,
    requested_workers: int | None = None,
    use_cache: bool = True,
) -> DeviceBatches:
    """Batches of items for training (shuffled, augmented when asked) or for evaluation (in order), each rank
    taking its share; batch_size is the global batch (each of N ranks takes ceil(batch_size / N))."""
    run = current_run()
    reader, slots = (None, None)
    if run is not None and use_cache:
        reader, slots = run.slots(items, views, pre.image_size, pre.interpolation, all_items=train)
    data = ViewDataset(items, views, pre.image_size, pre.interpolation, reader, slots)
    ranks = distributed.ranks()
    per_rank = max(1, math.ceil(batch_size / ranks.world))
    sampler: DistributedSampler[int] = DistributedSampler(
        data, ranks.world, ranks.rank, shuffle=train, seed=seed, drop_last=False
    )
    batches = BatchSampler(sampler, per_rank, drop_last=False)
    workers = min(loader_workers(device, requested_workers), len(batches))
    augmenter = BatchAugment(seed * 1000 + ranks.rank) if train and augment else None
    cancel = run.reporter.cancel if run is not None else None
    prep = BatchPrep(pre, device, augmenter)
    if workers > 0 and requested_workers is None and slots is not None and bool((slots >= 0).all()):
        data.pin_memory = device.type == "cuda"
        return DeviceBatches(PrefetchThread(data, batches), sampler, prep, cancel)
    loader = DataLoader(
        data,
        sampler=batches,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=train and workers > 0,
        worker_init_fn=init_worker,
        # Its own generator: the loader draws a worker seed per pass, which must not move the global stream that
        # dropout draws from (else the worker count would change the run).
        generator=torch.Generator().manual_seed(seed),
    )
    return DeviceBatches(loader, sampler, prep, cancel)
