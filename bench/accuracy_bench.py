"""Accuracy on real COCO photos with caption-derived labels: stratified 5-fold CV, mean and std.

Run by hand (skips when ../shared/coco-har is absent):
    python bench/accuracy_bench.py [--models cnn-scratch,effnet-lp,effnet-ft] [--folds 5] [--classes 4,3]

The labels are the weak ones the importer derives from the captions (no human correction), on 4 classes and on 3
(walking and running merged, as the reference paper did). Every fold trains a fresh model on 4/5 of the images
(15% of that as validation) and tests on the remaining 1/5. Fine-tuning on a CPU is slow, so it runs few epochs
at a smaller image size; the settings are printed with the results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ml_common import COCO_HAR, machine_info

MODELS = {
    "cnn-scratch": {"model_kind": "cnn-scratch", "mode": "scratch", "image_size": 96, "epochs": 15, "lr": 3e-3},
    "effnet-lp": {"model_kind": "efficientnet-lite0", "mode": "linear-probe", "image_size": 224},
    "effnet-ft": {
        "model_kind": "efficientnet-lite0",
        "mode": "fine-tune",
        "image_size": 160,
        "epochs": 3,
        "lr": 1e-4,
        "finetune_last_blocks": 3,
        "backbone_lr_scale": 0.1,
    },  # fmt: skip
}


def merged(snapshot, groups: dict[str, tuple[str, ...]]):  # -> LabelSnapshot
    """The same images under fewer classes (e.g. walking and running as one)."""
    from harapp.core.types import LabelledItem, LabelSnapshot

    names = tuple(groups)
    index = {old: names.index(new) for new, olds in groups.items() for old in olds}
    items = tuple(
        LabelledItem(it.image_id, it.path, index[snapshot.class_names[it.class_index]], it.person_boxes, it.width,
                     it.height)
        for it in snapshot.items
    )  # fmt: skip
    return LabelSnapshot(names, items, snapshot.revision, snapshot.project_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", type=Path, default=COCO_HAR)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--classes", default="4,3")
    parser.add_argument("--person-crop", action="store_true", help="train on the largest person box")
    parser.add_argument("--project", type=Path, default=None, help="reuse this project (keeps the embedding cache)")
    args = parser.parse_args()
    if not (args.coco / "annotations").is_dir():
        print(f"SKIPPED: no COCO data at {args.coco}")
        return 0
    from harapp.core.importers.coco import import_coco
    from harapp.core.store import Project
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import cross_validate

    print(machine_info())
    print("NOTE: the CPU is shared with other jobs; times are noisy. Accuracy figures are seeded (seed 0).\n")
    tmp = tempfile.TemporaryDirectory()
    path = args.project or Path(tmp.name) / "coco.harapp"
    if path.exists():
        project = Project.open(path)
    else:
        project = Project.create(path)
        import_coco(project, args.coco)
    four = project.snapshot()
    sets = {
        "4": four,
        "3": merged(four, {"walking/running": ("walking", "running"), "sitting": ("sitting",),
                           "standing": ("standing",)}),
    }  # fmt: skip
    counts = {n: sum(1 for it in four.items if it.class_index == i) for i, n in enumerate(four.class_names)}
    print(f"{len(four.items)} caption-labelled photos: {counts}; {args.folds}-fold stratified CV\n")
    print("| model | settings | classes | accuracy mean ± std | macro-F1 mean ± std | time s |")
    print("|---|---|---|---|---|---|")
    for name in args.models.split(","):
        settings = {**MODELS[name], "person_crop": args.person_crop}
        for classes in args.classes.split(","):
            config = TrainConfig(**settings, folds=args.folds, device="cpu", batch_size=32, seed=0)  # type: ignore[arg-type]
            start = time.perf_counter()
            folds = cross_validate(config, sets[classes], store=project)
            took = time.perf_counter() - start
            acc = [m.accuracy for m in folds]
            f1 = [m.macro_f1 for m in folds]
            shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k not in ("model_kind",))
            print(
                f"| {name} | {shown} | {classes} | {statistics.mean(acc):.3f} ± {statistics.stdev(acc):.3f} | "
                f"{statistics.mean(f1):.3f} ± {statistics.stdev(f1):.3f} | {took:.0f} |",
                flush=True,
            )
    project.close()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
