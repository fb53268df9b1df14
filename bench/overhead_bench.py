"""What the trainer costs on top of a bare PyTorch loop: train()'s training phase against hand-written loops on
the same model, images, batch and optimiser, run alternately in one process.

    python bench/overhead_bench.py [--kinds efficientnet-lite0,cnn-scratch] [--images 128] [--epochs 2] [--rounds 3]

Per kind, in its registry mode (EfficientNet-Lite0: fine-tune, ImageNet weights, 224 px, batch 16; the small CNN:
scratch, 96 px, batch 32), augmentation on, no validation (val_fraction 0), on this CPU:
- train(): the images/s of its training phase (its own progress figure: images / time since the phase began,
  so it includes every per-step cost of the trainer: progress reports, cancel checks, the cosine schedule, the
  per-epoch checkpoint and best-weights copy);
- bare loop, same input: model.train(), AdamW over the same parameter groups, cross-entropy with the same class
  weights, fed by the same batches (the decoded-image cache and the batch augmentation): trainer overhead alone;
- bare loop, PIL input: the same loop fed the classic way (a Dataset that decodes and augments each JPEG with
  PIL, a DataLoader, no workers on a CPU), which is what train() did before the decoded-image cache.
The three alternate, `--rounds` times; the ratio is of medians. Goal: train() / bare (same input) >= 0.9.

Rates count images per second of this process's CPU time, with torch on one thread, from the end of the first
step to the end of the last: this machine's two cores are shared with other jobs, and wall-clock rates of the
same loop swung 3x between rounds (they are printed too). Both sides skip step 1 (train() reports first after it).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from ml_common import COCO_HAR, machine_info
from PIL import Image

KIND_MODES = {"efficientnet-lite0": "fine-tune", "cnn-scratch": "scratch"}


def snapshot_of(folder: Path, n: int, project: Path):  # -> LabelSnapshot
    from harapp.core.types import DEFAULT_CLASSES, LabelledItem, LabelSnapshot

    items = []
    for i, path in enumerate(sorted(folder.glob("*.jpg"))[:n]):
        with Image.open(path) as img:
            items.append(LabelledItem(i + 1, path, i % 4, (), img.width, img.height))
    return LabelSnapshot(DEFAULT_CLASSES, tuple(items), 1, project)


def _images(split_train: int, batch: int, epoch: int, step: int) -> int:
    """Images trained on by the end of (epoch, step)."""
    return (epoch - 1) * split_train + min(step * batch, split_train)


def trainer_rate(config, snapshot, out: Path) -> tuple[float, float]:  # noqa: ANN001
    """train()'s training phase: (images per CPU second, images per wall second), from its step-1 report to its
    last one (its own progress reports; the probe fit before a fine-tune reports other step counts)."""
    import math

    from harapp.ml.data import stratified_split
    from harapp.ml.progress import TrainProgress
    from harapp.ml.trainer import train

    n_train = len(stratified_split(snapshot.items, config.val_fraction, config.test_fraction, config.seed).train)
    steps = math.ceil(n_train / config.batch_size)
    marks: list[tuple[float, float, int]] = []

    def progress(p: TrainProgress) -> None:
        if p.phase == "training" and p.epochs == config.epochs and p.steps == steps:
            done = _images(n_train, config.batch_size, p.epoch, p.step)
            marks.append((time.process_time(), time.perf_counter(), done))

    train(config, snapshot, out, progress=progress)
    (cpu0, wall0, n0), (cpu1, wall1, n1) = marks[0], marks[-1]
    return (n1 - n0) / (cpu1 - cpu0), (n1 - n0) / (wall1 - wall0)


def bare_rate(config, snapshot, pil: bool) -> tuple[float, float]:  # noqa: ANN001
    """A hand-written loop over the training split: (images per CPU second, per wall second) after step 1."""
    from pil_pipeline import PilDataset, pil_transform
    from torch import nn
    from torch.utils.data import DataLoader

    from harapp.ml.augment import BatchAugment
    from harapp.ml.batches import BatchPrep, ViewDataset
    from harapp.ml.data import class_weights, stratified_split
    from harapp.ml.loop import _freeze_norm_statistics, param_groups
    from harapp.ml.models import build_model
    from harapp.ml.photo_views import PhotoViews
    from harapp.ml.progress import Reporter
    from harapp.ml.run_images import run_images

    torch.manual_seed(config.seed)
    split = stratified_split(snapshot.items, config.val_fraction, config.test_fraction, config.seed)
    built = build_model(config, snapshot.class_names)
    model = built.model
    opt = torch.optim.AdamW(param_groups(built, config), weight_decay=config.weight_decay)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(split.train, len(snapshot.class_names)))
    pre = built.preprocess
    if pil:
        data = PilDataset(split.train, pil_transform(pre, True), int(pre.image_size * 1.3))
        batches = DataLoader(data, batch_size=config.batch_size, shuffle=True)
        prep = None
    else:
        view = PhotoViews.of(pre, config.views)
        with run_images(snapshot, Reporter(None, None)) as run:  # the warm cache train() built
            reader, slots = run.slots(split.train, view, pre.image_size, pre.interpolation, all_items=False)
        data = ViewDataset(split.train, view, pre.image_size, pre.interpolation, reader, slots)
        batches = DataLoader(data, batch_size=None, sampler=torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(data), config.batch_size, drop_last=False))  # fmt: skip
        prep = BatchPrep(pre, torch.device("cpu"), BatchAugment(config.seed))
    seen = 0
    mark: tuple[float, float] | None = None
    for _ in range(config.epochs):
        model.train()
        _freeze_norm_statistics(model, all_norms=config.mode == "fine-tune")
        for batch in batches:
            x, y = (batch[0], batch[1]) if prep is None else (prep(batch[0], batch[1]), batch[2])
            loss = loss_fn(model(**x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if mark is None:  # from the end of step 1, as train()'s first progress report
                mark = (time.process_time(), time.perf_counter())
            else:
                seen += len(y)
    assert mark is not None
    return seen / (time.process_time() - mark[0]), seen / (time.perf_counter() - mark[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KIND_MODES))
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", type=Path, default=COCO_HAR / "val2017")
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU time then measures work, whatever the other jobs on this machine take
    print(machine_info())
    from harapp.ml.config import TrainConfig

    with tempfile.TemporaryDirectory() as tmp:
        snapshot = snapshot_of(args.photos, args.images, Path(tmp) / "bench.harapp")
        print(f"\n{len(snapshot.items)} COCO photos, {args.epochs} epochs, {args.rounds} rounds, CPU")
        print("images per CPU second of this process (medians; wall-clock rates per round below them)")
        print(f"{'kind (mode)':<44}{'train()':>9}{'bare, same input':>18}{'bare, PIL':>11}{'ratio':>7}{'vs PIL':>8}")
        for kind in [k for k in args.kinds.split(",") if k]:
            # The whole photo alone: the bare loops read one view (and the photos have no person boxes).
            config = TrainConfig.for_kind(
                kind, KIND_MODES[kind], epochs=args.epochs, val_fraction=0.0, test_fraction=0.05, device="cpu",
                early_stopping_patience=0, views=("whole",),
            )  # fmt: skip
            trainer_rate(config, snapshot, Path(tmp) / "warm.pt")  # builds the decoded cache; not counted
            rows: dict[str, list[tuple[float, float]]] = {"train": [], "bare": [], "pil": []}
            for i in range(args.rounds):
                rows["train"].append(trainer_rate(config, snapshot, Path(tmp) / f"{kind}-{i}.pt"))
                rows["bare"].append(bare_rate(config, snapshot, pil=False))
                rows["pil"].append(bare_rate(config, snapshot, pil=True))
            t, b, p = (statistics.median(r[0] for r in rows[k]) for k in ("train", "bare", "pil"))
            label = f"{kind} ({config.mode}, {config.image_size} px, b{config.batch_size})"
            print(f"{label:<44}{t:>9.1f}{b:>18.1f}{p:>11.1f}{t / b:>7.2f}{t / p:>8.2f}", flush=True)
            for k, v in rows.items():
                print(f"    {k:>5} per round, CPU s: " + " ".join(f"{c:.1f}" for c, _ in v) + "   wall s: "
                      + " ".join(f"{w:.1f}" for _, w in v))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
