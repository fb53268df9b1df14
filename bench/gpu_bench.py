"""The trainer's CUDA path on real-size models: bf16 autocast, images per second, and the card's name.

    python bench/gpu_bench.py [--kinds efficientnet-lite0,resnet50,clip] [--images 1536] [--epochs 2]

Part 1: one optimiser step (forward + backward + AdamW under the trainer's bf16 autocast) on random tensors at
224 px, batch 32 and 128, per kind: what the GPU itself can do. Part 2: the real `train()` end to end on a
generated project of JPEG photos (decode, augment, copy to the GPU, step, validate, checkpoint), with the
image-decoding workers off and at their GPU default, side by side; images/s is the trainer's own progress
figure for the training phase. Skips with a message when there is no CUDA GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from ml_common import machine_info, shapes_project

KINDS = ["efficientnet-lite0", "resnet50", "clip"]


DEVICE = torch.device("cuda")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _config(kind: str, **extra: object):  # -> TrainConfig
    from harapp.ml.config import TrainConfig

    return TrainConfig(
        model_kind=kind, mode="fine-tune", device=str(DEVICE), image_size=224, clip_model="ViT-B-32",
        pretrained=kind == "efficientnet-lite0", augment=True, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def step_throughput(kind: str, batch: int, steps: int = 10) -> tuple[float, str]:
    """Images/s of training steps on random data, and the dtype the logits come out in under autocast."""
    from harapp.ml.device import autocast
    from harapp.ml.loop import param_groups
    from harapp.ml.models import build_model

    config = _config(kind, batch_size=batch)
    built = build_model(config, ("walking", "running", "sitting", "standing"))
    device = DEVICE
    model = built.model.to(device).train()
    opt = torch.optim.AdamW(param_groups(built, config))
    side = built.preprocess.image_size
    x = torch.randn(batch, 3, side, side, device=device)
    y = torch.randint(0, 4, (batch,), device=device)
    dtype = "?"
    for i in range(steps + 3):  # three warm-up steps: cuDNN autotuning and the allocator settle
        if i == 3:
            _sync()
            start = time.perf_counter()
        with autocast(device):
            logits = model(x)
        dtype = str(logits.dtype).removeprefix("torch.")
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync()
    rate = batch * steps / (time.perf_counter() - start)
    del model, opt, x, y
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()
    return rate, dtype


def end_to_end(kind: str, snapshot, folder: Path, epochs: int, batch: int, workers: int | None) -> dict:  # noqa: ANN001
    from harapp.ml.device import loader_workers
    from harapp.ml.progress import TrainProgress
    from harapp.ml.trainer import train

    rates: list[float] = []

    def progress(p: TrainProgress) -> None:
        if p.phase == "training" and p.images_per_second > 0:
            rates.append(p.images_per_second)

    config = _config(kind, epochs=epochs, batch_size=batch, loader_workers=workers, early_stopping_patience=99)
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = train(config, snapshot, folder / f"{kind}-{workers}.pt", progress=progress)
    wall = time.perf_counter() - start
    tail = rates[len(rates) // 2 :] or rates  # the second half: past worker start-up and autotuning
    return {
        "workers": loader_workers(DEVICE, workers),
        "images_per_s": statistics.median(tail) if tail else float("nan"),
        "wall_s": wall,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else float("nan"),
        "test_accuracy": result.metrics.accuracy if result.metrics else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--images", type=int, default=1536)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10, help="timed steps in part 1")
    parser.add_argument("--cpu-smoke", action="store_true", help="run every path on the CPU (a check of this script)")
    args = parser.parse_args()
    global DEVICE
    print(machine_info())
    if args.cpu_smoke:
        DEVICE = torch.device("cpu")
    elif not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to measure (the CPU figures are in bench/README.md)")
        return 0
    else:
        props = torch.cuda.get_device_properties(0)
        print(f"card: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs")
    torch.backends.cudnn.benchmark = True
    kinds = [k for k in args.kinds.split(",") if k]

    print("\nPart 1: training steps on random 224 px tensors under the trainer's autocast (images/s)")
    print(f"{'kind':<20}{'logits dtype':>14}{'batch 32':>12}{'batch 128':>12}")
    for kind in kinds:
        r32, dtype = step_throughput(kind, 32, args.steps)
        r128, _ = step_throughput(kind, 128, args.steps)
        print(f"{kind:<20}{dtype:>14}{r32:>12.0f}{r128:>12.0f}", flush=True)

    print(f"\nPart 2: train() end to end, {args.images} generated 320x240 JPEGs, {args.epochs} epochs", end="")
    print(f", batch {args.batch}")
    print(f"{'kind':<20}{'workers':>8}{'images/s':>10}{'wall s':>9}{'peak GiB':>10}{'test acc':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        project, _ = shapes_project(Path(tmp), args.images)
        snapshot = project.snapshot()
        project.close()
        for kind in kinds:
            for workers in (0, None):
                row = end_to_end(kind, snapshot, Path(tmp), args.epochs, args.batch, workers)
                print(
                    f"{kind:<20}{row['workers']:>8}{row['images_per_s']:>10.0f}{row['wall_s']:>9.1f}"
                    f"{row['peak_gib']:>10.2f}{row['test_accuracy']:>10.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
