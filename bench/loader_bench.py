"""The training input pipeline alone (no model): building the decoded-image cache, then reading batches from it.

    python bench/loader_bench.py [--size 224] [--batch 128] [--epochs 5] [--photos DIR]

On the real COCO photos of ../shared/coco-har (598 JPEGs, about 640x480):
- cold: decoding every photo into the cache (JPEG draft decode, resize to size x size, write), with 1 and 2
  build processes: images/s in all and per process;
- warm: uint8 batches read from the cache (memory map -> batch tensor) over several epochs, by the prefetch
  thread train() uses on a GPU, and by a DataLoader with 0, 1 and 2 worker processes: images/s in all and per
  worker. Goal: >= 2,000 img/s with one worker at 224 px;
- warm + the device step on this CPU: uint8 -> float, per-sample augmentation of the batch, normalisation (on a
  GPU this runs there; here it shows what CPU training pays);
- before the cache: the PIL path the trainer used (decode, PIL augmentation, ToTensor per image) with 0 and 1
  workers, and the new pipeline decoding on the fly (no cache), for comparison.
Each row is timed after one untimed batch (worker start-up is not part of a rate). The page cache holds the
JPEGs and the cache file (this machine's RAM is large), so "cold" means "not yet decoded", not "not yet read".
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from ml_common import COCO_HAR, machine_info
from PIL import Image


def photos(folder: Path, limit: int | None):  # -> list[LabelledItem]
    from harapp.core.types import LabelledItem

    items = []
    for i, path in enumerate(sorted(folder.glob("*.jpg"))[:limit]):
        with Image.open(path) as img:
            items.append(LabelledItem(i + 1, path, i % 4, (), img.width, img.height))
    return items


def rate(loader, epochs: int, prepare=None) -> float:  # noqa: ANN001
    """Images/s over `epochs` passes of the loader, after one untimed batch."""
    iterator = iter(loader)
    next(iterator)  # start-up: workers fork, the memory map opens
    del iterator
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            x = batch[0]
            if prepare is not None:
                x = prepare(x, batch[1])
            seen += len(batch[2])
    return seen / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--photos", type=Path, default=COCO_HAR / "val2017")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    args = parser.parse_args()
    print(machine_info())
    torch.set_num_threads(1)  # one core for the main process, as a loader-only measurement should be

    from pil_pipeline import PilDataset, pil_loader, pil_transform
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    from harapp.ml.augment import BatchAugment
    from harapp.ml.batches import BatchPrep, PrefetchThread, ViewDataset
    from harapp.ml.decode import Entry
    from harapp.ml.decoded_cache import DecodedCache
    from harapp.ml.models import Preprocess
    from harapp.ml.photo_views import PhotoViews

    items = photos(args.photos, args.limit)
    if not items:
        print(f"no photos in {args.photos}")
        return 1
    size, batch = args.size, args.batch
    pre = Preprocess(size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "squash")
    view = PhotoViews.of(pre, ("whole",))
    entries = [Entry(str(it.path), view.regions(it)[0]) for it in items]
    print(f"\n{len(items)} photos from {args.photos}, {size} px, batch {batch}, {args.epochs} epochs per warm row")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "p.cache"
        print("\ncold: building the cache")
        print(f"{'processes':>10}{'images/s':>10}{'per process':>13}{'seconds':>9}")
        for processes in (1, 2):
            shutil.rmtree(folder, ignore_errors=True)
            cache = DecodedCache(folder, size)
            start = time.perf_counter()
            ensured = cache.ensure(entries, limit_bytes=10**12, processes=processes)
            seconds = time.perf_counter() - start
            assert ensured.decoded == len(items)
            r = len(items) / seconds
            print(f"{processes:>10}{r:>10.0f}{r / processes:>13.0f}{seconds:>9.2f}")
        slots = cache.lookup(entries)[:, None]
        print(f"cache file {cache.data_path.name}: {cache.data_path.stat().st_size / 1e6:.0f} MB")

        def loader(data, workers: int) -> DataLoader:  # noqa: ANN001
            batches = BatchSampler(SequentialSampler(range(len(items))), batch, drop_last=False)
            keep = workers > 0
            return DataLoader(data, sampler=batches, batch_size=None, num_workers=workers, persistent_workers=keep)

        cached = ViewDataset(items, view, size, "bilinear", cache.reader(), slots)
        print("\nwarm: uint8 batches from the cache (loader alone)")
        print(f"{'reader':>28}{'images/s':>10}{'per worker':>12}")
        every = BatchSampler(SequentialSampler(range(len(items))), batch, drop_last=False)
        r = rate(PrefetchThread(cached, every), args.epochs)
        print(f"{'1 thread (what CUDA uses)':>28}{r:>10.0f}{r:>12.0f}", flush=True)
        for workers in (0, 1, 2):
            r = rate(loader(cached, workers), args.epochs)
            name = "in the main process" if workers == 0 else f"{workers} worker process" + "es" * (workers > 1)
            print(f"{name:>28}{r:>10.0f}{r / max(workers, 1):>12.0f}", flush=True)

        cpu = torch.device("cpu")
        plain, augmented = BatchPrep(pre, cpu, None), BatchPrep(pre, cpu, BatchAugment(0))
        print("\nwarm + the device step on this CPU (1 worker reads; main process converts)")
        print(f"{'step':>24}{'images/s':>10}")
        for name, prep in (("float + normalise", plain), ("+ batch augmentation", augmented)):
            r = rate(loader(cached, 1), max(1, args.epochs // 2), prep)
            print(f"{name:>24}{r:>10.0f}", flush=True)

        print("\nbefore the cache: decoding every epoch (2 epochs each)")
        print(f"{'pipeline':>34}{'workers':>8}{'images/s':>10}{'per worker':>12}")
        fly = ViewDataset(items, view, size, "bilinear")
        rows = [
            ("PIL: decode + augment + ToTensor", PilDataset(items, pil_transform(pre, True), size * 13 // 10)),
            ("PIL: decode + ToTensor (eval)", PilDataset(items, pil_transform(pre, False), size)),
        ]
        for name, data in rows:
            for workers in (0, 1):
                r = rate(pil_loader(data, batch, workers), 2)
                print(f"{name:>34}{workers:>8}{r:>10.0f}{r / max(workers, 1):>12.0f}", flush=True)
        for workers in (0, 1):
            r = rate(loader(fly, workers), 2)
            name = "new, no cache: decode to uint8"
            print(f"{name:>34}{workers:>8}{r:>10.0f}{r / max(workers, 1):>12.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
