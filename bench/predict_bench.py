"""Single-photo prediction latency per model kind: p50/p95 of Predictor.predict(path), CPU.

Run by hand: python bench/predict_bench.py [--runs 30] [--kinds ...]
Each call decodes the JPEG, preprocesses it and runs the model on one image (batch 1), as dropping a photo on
the window does. The photo is a real COCO one when ../shared/coco-har exists, else a generated 640x480 JPEG.
Models are untrained heads on the real architectures at 224x224 (latency does not depend on the weights);
EfficientNet-Lite0 uses its ImageNet backbone, CLIP is ViT-B-32 with random init (no weights offline).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from ml_common import COCO_HAR, machine_info, percentile

KINDS = [
    ("cnn-scratch", "scratch"),
    ("resnet18", "scratch"),
    ("resnet50", "scratch"),
    ("efficientnet-lite0", "linear-probe"),
    ("clip", "linear-probe"),
]


def photo(folder: Path) -> Path:
    photos = sorted((COCO_HAR / "val2017").glob("*.jpg")) if COCO_HAR.is_dir() else []
    if photos:
        return photos[0]
    import numpy as np
    from PIL import Image

    path = folder / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path)
    return path


def checkpoint(kind: str, mode: str, folder: Path) -> Path:
    from harapp.ml.checkpoint import save_checkpoint
    from harapp.ml.config import TrainConfig
    from harapp.ml.models import build_model

    config = TrainConfig(model_kind=kind, mode=mode, pretrained=kind == "efficientnet-lite0", device="cpu")
    names = ("walking", "running", "sitting", "standing")
    built = build_model(config, names)
    path = folder / f"{kind}.pt"
    save_checkpoint(
        path, built, config, names, metrics=None, metrics_split="test", label_revision=0, complete=True,
        backbone_changed=mode != "linear-probe",
    )  # fmt: skip
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--kinds", default=",".join(k for k, _ in KINDS))
    args = parser.parse_args()
    from harapp.ml.predictor import Predictor

    print(machine_info())
    print("NOTE: the CPU is shared with other jobs; figures are noisy (look at the load average).\n")
    wanted = set(args.kinds.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        image = photo(Path(tmp))
        print(f"photo: {image.name}, {args.runs} runs after 3 warm-up calls, torch threads {torch.get_num_threads()}")
        print("| kind | load s | p50 ms | p95 ms | min ms |")
        print("|---|---|---|---|---|")
        for kind, mode in KINDS:
            if kind not in wanted:
                continue
            path = checkpoint(kind, mode, Path(tmp))
            start = time.perf_counter()
            predictor = Predictor.from_checkpoint(path, device="cpu")
            load = time.perf_counter() - start
            for _ in range(3):
                predictor.predict(image)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                predictor.predict(image)
                times.append((time.perf_counter() - start) * 1000)
            p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
            print(f"| {kind} | {load:.2f} | {p50:.0f} | {p95:.0f} | {min(times):.0f} |", flush=True)


if __name__ == "__main__":
    main()
