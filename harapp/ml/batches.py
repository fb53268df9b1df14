"""Batches for training and feature extraction: each sample's views as uint8 pixels, read from the decoded-image
cache (or decoded now where the cache lacks them), stacked by a loader, then moved to the device, augmented as
whole batches there, and normalised.

A sample is a set of named views of one photo (a ViewSet, such as photo_views.PhotoViews): each image view is a
Region of the photo, so a person view is one more entry of the same cache, and per-sample vectors (the pose)
travel beside the pixels. Batches come out as (x, y, positions): x a dict of tensors by view name (what
HarModel's forward takes), y the class indices and positions the samples' places in the item list.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, get_worker_info

from harapp.core.types import LabelledItem
from harapp.ml import distributed
from harapp.ml.augment import BatchAugment
from harapp.ml.data import init_worker
from harapp.ml.decode import Entry, decode_entry
from harapp.ml.decoded_cache import SlotReader
from harapp.ml.device import loader_workers
from harapp.ml.models import Preprocess
from harapp.ml.progress import Reporter
from harapp.ml.run_images import Views, current_run

RawBatch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor, torch.Tensor]
"""What a loader yields: uint8 views (B, S, S, 3) by name, float vectors (B, D) by name, labels, positions."""


class ViewSet(Views, Protocol):
    """The views each sample shows a model (their names, and the region of a photo each one is cut from), and
    the per-sample vectors that travel with them."""

    def vectors(self, items: Sequence[LabelledItem]) -> dict[str, npt.NDArray[np.float32]]:
        """name -> (n, D) floats for the items (pose features, say); {} for none."""
        ...


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

    def __call__(
        self, views: Mapping[str, torch.Tensor], vectors: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
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
        reporter: Reporter | None = None,
    ) -> None:
        self.loader = loader
        self.sampler = sampler
        self.prep = prep
        self.reporter = reporter
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        reporter = self.reporter if distributed.ranks().world > 1 else None
        for views, vectors, labels, positions in self.loader:
            if reporter is not None and distributed.any_rank(reporter.cancel_requested):
                reporter.cancel_agreed()
            yield self.prep(views, vectors), labels.to(self.prep.device, non_blocking=True), positions


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
    reporter = run.reporter if run is not None else None
    prep = BatchPrep(pre, device, augmenter)
    if workers > 0 and requested_workers is None and slots is not None and bool((slots >= 0).all()):
        data.pin_memory = device.type == "cuda"
        return DeviceBatches(PrefetchThread(data, batches), sampler, prep, reporter)
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
    return DeviceBatches(loader, sampler, prep, reporter)
