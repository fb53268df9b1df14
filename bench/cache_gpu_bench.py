"""End-to-end train() on a GPU with the decoded-image cache: cold (the cache is built) and warm epochs.

    python bench/cache_gpu_bench.py                  # ViT-B-32 fine-tune, bf16, batch 128, 4,096 photos, 3 epochs
    python bench/cache_gpu_bench.py --cpu-smoke      # the same path on the CPU with tiny sizes (a check of this script)

Generates `--images` JPEG photos of 640x480 (COCO's usual size; coloured shapes on noise, so they decode about as
slowly as real photos) into a temporary project, then runs train() three times on the same labels:
1. cold: no cache yet; the "decoding" phase builds it (one process per core), then the epochs read from it;
2. warm: the cache is there; no decoding at all;
3. no cache: decoded_cache=False, every epoch decodes every JPEG in loader workers (what train() did before).
For each: the decode phase (s, img/s), images/s of each training epoch (steps between the epoch's first and last
progress report, so validation is not in it), train()'s wall time, and the GPU's mean utilisation during the
training phase (nvidia-smi, sampled every 200 ms). Goal: >= 1,500 img/s in warm epochs (before: about 460).
CLIP is ViT-B-32 with random init (no weights offline; the same cost as pretrained). The model sees the whole
photo only (the generated photos have no people; a person view would double the images per step).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from ml_common import machine_info


def _draw(job: tuple[Path, int, tuple[int, int]]) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    path, i, (w, h) = job
    rng = np.random.default_rng(i)
    img = Image.fromarray(rng.integers(0, 160, (h, w, 3), dtype=np.uint8))
    d = ImageDraw.Draw(img)
    c = i % 4
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, min(w, h) - 120, 2))
        d.rectangle([x, y, x + 40 + 25 * c, y + 110], fill=(60 * c, 250 - 60 * c, int(rng.integers(0, 255))))
    img.save(path, quality=88)


def make_snapshot(folder: Path, n: int, size: tuple[int, int]):  # -> LabelSnapshot
    """n photos on disk (drawn in parallel) and a label snapshot over them, as a project would give it."""
    from harapp.core.types import DEFAULT_CLASSES, LabelledItem, LabelSnapshot

    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    jobs = [(images / f"img_{i:05d}.jpg", i, size) for i in range(n)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_draw, jobs, chunksize=64))
    items = tuple(LabelledItem(i + 1, path, i % 4, (), size[0], size[1]) for path, i, _ in jobs)
    return LabelSnapshot(DEFAULT_CLASSES, items, 1, folder / "bench.harapp")


class GpuSampler:
    """nvidia-smi's utilisation.gpu every 200 ms, with timestamps; empty where nvidia-smi is missing."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi") and torch.cuda.is_available():
            self._proc = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )  # fmt: skip
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                self.samples.append((time.monotonic(), float(line.strip())))
            except ValueError:
                continue

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=5)

    def mean(self, start: float, end: float) -> float | None:
        inside = [u for t, u in self.samples if start <= t <= end]
        return statistics.mean(inside) if inside else None


def run(config, snapshot, out: Path, gpu: GpuSampler) -> dict:  # noqa: ANN001
    from harapp.ml.progress import TrainProgress
    from harapp.ml.trainer import train

    reports: list[tuple[float, TrainProgress]] = []
    started = time.monotonic()
    result = train(config, snapshot, out, progress=lambda p: reports.append((time.monotonic(), p)))
    wall = time.monotonic() - started
    decoding = [(t, p) for t, p in reports if p.phase == "decoding"]
    training = [(t, p) for t, p in reports if p.phase == "training" and p.steps > 1]
    epochs = []
    for epoch in sorted({p.epoch for _, p in training}):
        # Reports before the epoch's last step: the forced report at its end comes after validation.
        inside = [(t, p) for t, p in training if p.epoch == epoch and p.step < p.steps]
        if len(inside) >= 2:
            (t0, first), (t1, last) = inside[0], inside[-1]
            epochs.append((last.step - first.step) * config.batch_size / max(t1 - t0, 1e-9))
    # The phase's last report: all its photos over all its time.
    decode_rate = decoding[-1][1].images_per_second if decoding else float("nan")
    util = gpu.mean(training[0][0], training[-1][0]) if training else None
    return {
        "decode_s": len(snapshot.items) / decode_rate if decoding else 0.0,
        "decode_rate": decode_rate,
        "epochs": epochs,
        "wall_s": wall,
        "gpu_util": util,
        "accuracy": result.metrics.accuracy if result.metrics else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--clip-model", default="ViT-B-32")
    parser.add_argument("--cpu-smoke", action="store_true", help="CPU, 16 photos, batch 2, 2 epochs")
    args = parser.parse_args()
    print(machine_info())
    if args.cpu_smoke:
        args.images, args.batch, args.epochs, device = 16, 2, 2, "cpu"
    elif not torch.cuda.is_available():
        print("no CUDA GPU here; run with --cpu-smoke to check the script on the CPU")
        return 0
    else:
        device = "cuda"
        props = torch.cuda.get_device_properties(0)
        print(f"card: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs")
        torch.backends.cudnn.benchmark = True
    from harapp.ml.config import TrainConfig

    config = TrainConfig(
        model_kind="clip", mode="fine-tune", clip_model=args.clip_model, pretrained=False, device=device,
        batch_size=args.batch, epochs=args.epochs, augment=True, early_stopping_patience=0,
        val_fraction=0.05, test_fraction=0.05, views=("whole",),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        snapshot = make_snapshot(Path(tmp), args.images, (640, 480))
        print(f"{args.images} generated 640x480 JPEGs in {time.monotonic() - start:.1f} s; {args.clip_model} "
              f"fine-tune (random init), batch {args.batch}, {args.epochs} epochs on {device}"
              + (" (bf16 autocast)" if device == "cuda" else ""))  # fmt: skip
        print(f"\n{'run':<10}{'decode s':>9}{'decode img/s':>13}{'epoch img/s':>28}{'wall s':>8}{'GPU %':>7}")
        with GpuSampler() as gpu:
            for name, cfg in (
                ("cold", config),
                ("warm", config),
                ("no cache", dataclasses.replace(config, decoded_cache=False)),
            ):
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                row = run(cfg, snapshot, Path(tmp) / f"{name}.pt", gpu)
                epochs = " / ".join(f"{r:.0f}" if r >= 10 else f"{r:.2f}" for r in row["epochs"])
                util = f"{row['gpu_util']:.0f}" if row["gpu_util"] is not None else "n/a"
                print(
                    f"{name:<10}{row['decode_s']:>9.1f}{row['decode_rate']:>13.0f}{epochs:>28}{row['wall_s']:>8.1f}"
                    f"{util:>7}",
                    flush=True,
                )
        cache = Path(tmp) / "bench.cache"
        size = sum(p.stat().st_size for p in cache.glob("*.u8")) / 1e9 if cache.exists() else 0.0
        print(f"\ndecoded cache: {size:.2f} GB for {args.images} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
