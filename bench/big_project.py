"""A generated project of N images (default 100,000), for measuring what opening and checking a big project costs.

Each image gets five captions, caption votes, a label (80 %), three persons and history rows; with
--embeddings, also one cached feature vector of 1,280 float32 (what an EfficientNet linear probe stores).
With --files, an empty file per image in DIR/images, so that the missing-files check has something to find.

Run: PYTHONPATH=. .venv/bin/python bench/big_project.py /tmp/big --images 100000 [--embeddings] [--files]
Then: PYTHONPATH=. .venv/bin/python bench/open_cost.py /tmp/big/big.harapp
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from harapp.core.store import Project
from harapp.core.store.bulk import ImageRow, LabelRow, PersonRow

CAPTIONS = (
    "A man standing next to a red bus on a busy street.",
    "Two women sitting on a bench in the park.",
    "A boy walking his dog down a quiet road.",
    "A woman running along the beach at sunset.",
    "People waiting at a crosswalk in the city.",
)
CLASSES = ("walking", "running", "sitting", "standing")


def build(folder: Path, n: int, embeddings: bool, files: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    images_dir = folder / "images"
    images_dir.mkdir(exist_ok=True)
    path = folder / "big.harapp"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    rng = random.Random(0)
    start = time.perf_counter()
    with Project.create(path) as project, project.transaction():
        source = project.add_source("coco", images_dir, {"images": n, "missing": 0})
        for first in range(0, n, 5000):
            count = min(5000, n - first)
            rows = [
                ImageRow(f"{i:012d}.jpg", 640, 480, i, CAPTIONS, {CLASSES[i % 4]: 3}, {"license": 1})
                for i in range(first, first + count)
            ]
            ids = project.upsert_images(source, rows)
            project.apply_labels(
                [LabelRow(image_id, CLASSES[image_id % 4], "caption", {CLASSES[image_id % 4]: 3}, 1.0)
                 for image_id in ids if rng.random() < 0.8]
            )  # fmt: skip
            persons = [
                PersonRow(image_id, (10.0 * k, 20.0, 100.0, 200.0), [5.0, 5.0, 2.0] * 17, None, image_id * 10 + k)
                for image_id in ids
                for k in range(3)
            ]
            project.add_persons(persons)
            if embeddings:
                vector = bytes(rng.getrandbits(8) for _ in range(1280 * 4))
                project.put_embeddings("efficientnet-lite0/224", {image_id: vector for image_id in ids})
            if files:
                for row in rows:
                    (images_dir / row.rel_path).touch()
    print(f"{n:,} images in {time.perf_counter() - start:.1f} s: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--embeddings", action="store_true")
    parser.add_argument("--files", action="store_true")
    args = parser.parse_args()
    build(args.folder, args.images, args.embeddings, args.files)


if __name__ == "__main__":
    main()
