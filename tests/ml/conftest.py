"""Fixtures for the ML tests: generated images, the demo dataset as a snapshot, a tiny CLIP, a real project."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from harapp.core.types import DEFAULT_CLASSES, LabelledItem, LabelSnapshot

TINY_CLIP = "harapp-tiny-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


@pytest.fixture(autouse=True)
def _few_threads() -> Iterator[None]:
    # Two cores are shared by several people; one thread also keeps float sums identical run to run.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def random_views(model: torch.nn.Module, n: int, size: int) -> dict[str, torch.Tensor]:
    """Random inputs for every view a HarModel takes (image views at `size`, the pose vector)."""
    views = {name: torch.randn(n, 3, size, size) for name in model.image_views}  # type: ignore[union-attr]
    if model.pose_dim:  # type: ignore[truthy-function]
        views["pose"] = torch.randn(n, int(model.pose_dim))  # type: ignore[arg-type]
    return views


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny random-init ViT with open_clip, so CLIP code paths run in a second, offline."""
    import open_clip

    folder = tmp_path_factory.mktemp("clipcfg")
    path = folder / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    open_clip.add_model_config(path)
    return TINY_CLIP


def draw_shapes(folder: Path, n: int, seed: int = 0, size: tuple[int, int] = (80, 64)) -> list[LabelledItem]:
    """Images whose class is visible at a glance: red squares, green discs, blue bars, yellow crosses."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        c = i % 4
        img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 90, 3)))
        d = ImageDraw.Draw(img)
        x, y = (int(v) for v in rng.integers(4, min(size) - 28, 2))
        if c == 0:
            d.rectangle([x, y, x + 22, y + 22], fill=(230, 40, 40))
        elif c == 1:
            d.ellipse([x, y, x + 22, y + 22], fill=(40, 230, 40))
        elif c == 2:
            d.rectangle([x, y + 8, x + 24, y + 14], fill=(40, 40, 230))
        else:
            d.line([x, y, x + 22, y + 22], fill=(230, 230, 40), width=4)
            d.line([x, y + 22, x + 22, y], fill=(230, 230, 40), width=4)
        path = folder / f"shape_{i:04d}.png"
        img.save(path)
        items.append(LabelledItem(i + 1, path, c, ((float(x), float(y), 24.0, 24.0),), size[0], size[1]))
    return items


@pytest.fixture
def shapes_snapshot(tmp_path: Path) -> LabelSnapshot:
    return LabelSnapshot(DEFAULT_CLASSES, tuple(draw_shapes(tmp_path / "shapes", 48)), 1, None)


def demo_items(root: Path) -> list[LabelledItem]:
    """The demo dataset's true activities as labelled items (the demo JSON carries them for tests)."""
    doc = json.loads((root / "annotations" / "person_keypoints_demo.json").read_text())
    boxes: dict[int, list[tuple[float, float, float, float]]] = {}
    for ann in doc["annotations"]:
        boxes.setdefault(ann["image_id"], []).append(tuple(ann["bbox"]))
    return [
        LabelledItem(
            im["id"],
            root / "images" / im["file_name"],
            DEFAULT_CLASSES.index(im["demo_truth"]),
            tuple(boxes.get(im["id"], ())),
            im["width"],
            im["height"],
        )  # fmt: skip
        for im in doc["images"]
    ]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harapp.core.demo.dataset import make_demo

    return make_demo(tmp_path_factory.mktemp("demo") / "dataset", n_images=200, seed=0)


@pytest.fixture
def demo_snapshot(demo_root: Path) -> LabelSnapshot:
    return LabelSnapshot(DEFAULT_CLASSES, tuple(demo_items(demo_root)), 1, None)


def project_from_items(path: Path, items: list[LabelledItem], root: Path) -> object:
    """A real project holding the given images and labels (no importer needed)."""
    from harapp.core.store import Project

    project = Project.create(path)
    source = project.add_source("folder", root, {})
    for it in items:
        image_id = project.upsert_image(source, it.path.relative_to(root).as_posix(), it.width, it.height)
        project.set_label(image_id, DEFAULT_CLASSES[it.class_index], "human")
    return project
