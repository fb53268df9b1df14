"""Shared bits of the ML benchmarks: machine description, data sets, percentiles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
COCO_HAR = Path(os.environ.get("HARAPP_COCO_HAR", REPO.parent / "shared" / "coco-har"))


def machine_info() -> str:
    import torch

    from bench.machine import describe

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return describe(f"torch {torch.__version__}, {torch.get_num_threads()} threads", f"GPU: {cuda}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def shapes_project(folder: Path, n: int, size: tuple[int, int] = (320, 240)):  # -> (Project, list[int])
    """A project of n generated photos (coloured shapes on noise), labelled by a 'human'."""
    import numpy as np
    from PIL import Image, ImageDraw

    from harapp.core.store import Project
    from harapp.core.types import DEFAULT_CLASSES

    rng = np.random.default_rng(0)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "bench.harapp")
    source = project.add_source("folder", images, {})
    changes = []
    for i in range(n):
        c = i % 4
        noise = rng.integers(0, 120, (size[1], size[0], 3), dtype=np.uint8)
        img = Image.fromarray(noise)
        d = ImageDraw.Draw(img)
        x, y = (int(v) for v in rng.integers(10, min(size) - 80, 2))
        d.rectangle([x, y, x + 20 + 20 * c, y + 60], fill=(60 * c, 250 - 60 * c, 128))
        name = f"img_{i:05d}.jpg"
        img.save(images / name, quality=90)
        image_id = project.upsert_image(source, name, size[0], size[1])
        changes.append((image_id, DEFAULT_CLASSES[c]))
    project.set_labels(changes, source="human", reason="bench")
    return project, [i for i, _ in changes]


def coco_project(path: Path, coco: Path = COCO_HAR):  # -> Project
    """The coco-har photos imported into a project at path (imported once; the file keeps the caches)."""
    from harapp.core.importers.coco import import_coco
    from harapp.core.store import Project

    if path.exists():
        return Project.open(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    project = Project.create(path)
    import_coco(project, coco)
    return project


def probe_features(project, config, items, *, detect: bool = True):  # -> (torch.Tensor, list[PersonInput])
    """The head's input for items under config (whole/person/pose views), from the project's caches where
    they hold it. detect=False ignores annotation-free detection; boxes come from the items."""
    import torch

    from harapp.ml.embeddings import cached_features
    from harapp.ml.models import build_model
    from harapp.ml.people import resolve_people
    from harapp.ml.progress import Reporter

    reporter = Reporter(None, None)
    built = build_model(config, ["a", "b", "c", "d"])
    people = resolve_people(items, config.views, project, reporter, detect=detect)
    feats, _ = cached_features(built, config, items, torch.device("cpu"), reporter, project, people)
    return feats, people
