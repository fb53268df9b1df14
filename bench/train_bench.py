"""Training throughput per model kind, and retrain latency with cached embeddings (linear probe).

Run by hand (CPU, a few minutes):
    python bench/train_bench.py [--kinds cnn-scratch,resnet18,...] [--size 224] [--steps 3]

Part 1: images/s of one optimiser step (forward + backward + AdamW) at batch 32 on random tensors, per kind, the
way `fine-tune`/`scratch` train; plus the forward-only rate (no_grad) that the embedding phase of `linear-probe`
runs at. Part 2: a 500-image project, a first linear-probe run (embeds all), then 10 labels change and the
retrain is timed end to end (train() call: model build, cache lookup, head fit, checkpoint write, model row).
Target: retrain under 2 s. CLIP is ViT-B-32 with random init (no weights offline; same cost as pretrained).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from ml_common import machine_info, shapes_project

KINDS = ["cnn-scratch", "resnet18", "resnet50", "efficientnet-lite0", "clip"]


def _config(kind: str, size: int, **extra: object):  # -> TrainConfig
    from harapp.ml.config import TrainConfig

    mode = {"cnn-scratch": "scratch", "clip": "fine-tune"}.get(kind, "fine-tune")
    return TrainConfig(
        model_kind=kind, mode=mode, image_size=size, device="cpu", pretrained=kind == "efficientnet-lite0",
        clip_model="ViT-B-32", **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def throughput(kind: str, size: int, batch: int, steps: int) -> tuple[float, float]:
    from harapp.ml.loop import param_groups
    from harapp.ml.models import build_model

    config = _config(kind, size, batch_size=batch)
    built = build_model(config, ("walking", "running", "sitting", "standing"))
    model = built.model
    size = built.preprocess.image_size
    opt = torch.optim.AdamW(param_groups(built, config))
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 4, (batch,))
    model.train()
    times = []
    for i in range(steps + 1):  # the first step warms up allocators and kernels
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    train_rate = batch * len(times) / sum(times)
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(steps + 1):
            start = time.perf_counter()
            model.features(x)
            if i:
                times.append(time.perf_counter() - start)
    return train_rate, batch * len(times) / sum(times)


def retrain_latency(kind: str, n: int, changes: int) -> dict[str, float]:
    from harapp.core.types import DEFAULT_CLASSES
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        project, ids = shapes_project(Path(tmp), n)
        weights_path = None
        if kind == "clip-file":  # random ViT-B-32 weights in a local file: loads and checkpoints like real ones
            import open_clip

            weights_path = str(Path(tmp) / "vit-b-32.pt")
            torch.save(open_clip.create_model("ViT-B-32", pretrained=None).state_dict(), weights_path)
        config = TrainConfig(
            model_kind="clip" if kind == "clip-file" else kind, mode="linear-probe", device="cpu",
            pretrained=kind != "clip", clip_model="ViT-B-32", weights_path=weights_path,
        )  # fmt: skip
        start = time.perf_counter()
        train(config, project.snapshot(), Path(tmp) / "m.pt", project=project)
        first = time.perf_counter() - start
        edits = [(image_id, DEFAULT_CLASSES[(k + 1) % 4]) for k, image_id in enumerate(ids[:changes])]
        project.set_labels(edits, source="human", reason="bench")
        start = time.perf_counter()
        snapshot = project.snapshot()
        result = train(config, snapshot, Path(tmp) / "m.pt", project=project)
        second = time.perf_counter() - start
        project.close()
        embedded = next(h["embedded_images"] for h in result.history if h.get("event") == "done")
        return {"first_s": first, "retrain_s": second, "embedded_on_retrain": embedded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--retrain-kinds", default="efficientnet-lite0,clip,clip-file")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    print(machine_info())
    print("NOTE: the CPU is shared with other jobs; figures are noisy (look at the load average).\n")
    print(f"## Training throughput, batch {args.batch}, {args.size}x{args.size} (CLIP ViT-B-32: 224), CPU")
    print("| kind | train step img/s (fwd+bwd+AdamW) | forward-only img/s (embedding) |")
    print("|---|---|---|")
    for kind in [k for k in args.kinds.split(",") if k]:
        train_rate, fwd_rate = throughput(kind, args.size, args.batch, args.steps)
        print(f"| {kind} | {train_rate:.1f} | {fwd_rate:.1f} |", flush=True)
    print(f"\n## Retrain latency, linear probe, {args.images} images, {args.changes} labels changed, cached embeddings")
    print("| kind | first run s (embeds all) | retrain s | images embedded on retrain |")
    print("|---|---|---|---|")
    for kind in [k for k in args.retrain_kinds.split(",") if k]:
        r = retrain_latency(kind, args.images, args.changes)
        print(f"| {kind} | {r['first_s']:.1f} | {r['retrain_s']:.2f} | {r['embedded_on_retrain']} |", flush=True)


if __name__ == "__main__":
    main()
