"""Tiny generated training data for the GUI tests: coloured photos two or more classes can tell apart."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from harapp.core.types import LabelledItem, LabelSnapshot

if TYPE_CHECKING:
    from harapp.core.store import Project
    from harapp.gui.training_panel import TrainingPanel

CLASSES = ("walking", "running", "sitting", "standing")
TINY = {"image_size": 32, "device": "cpu", "augment": False, "early_stopping_patience": 10_000}
"""TrainConfig overrides for runs that take seconds on a CPU."""
_COLOURS = ((200, 40, 40), (40, 60, 200), (40, 170, 60), (210, 190, 40))


def make_photos(
    folder: Path, per_class: int = 6, size: int = 40, classes: int = 2, seed: int = 0
) -> list[tuple[Path, int]]:
    """Write ``per_class`` JPEGs per class (a tinted background and a random bar); returns (path, class)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, int]] = []
    for cls in range(classes):
        for i in range(per_class):
            base = tuple(max(0, min(255, c + rng.randint(-30, 30))) for c in _COLOURS[cls])
            img = Image.new("RGB", (size, size), base)
            draw = ImageDraw.Draw(img)
            x = rng.randint(0, size // 2)
            draw.rectangle((x, size // 4, x + size // 4, size - 4), fill=(255 - base[0], 255 - base[1], 255 - base[2]))
            path = folder / f"{CLASSES[cls]}_{i:02d}.jpg"
            img.save(path, quality=90)
            out.append((path, cls))
    return out


def make_snapshot(folder: Path, per_class: int = 6, size: int = 40, classes: int = 2) -> LabelSnapshot:
    photos = make_photos(folder, per_class, size, classes)
    items = tuple(
        LabelledItem(image_id=i + 1, path=path, class_index=cls, person_boxes=(), width=size, height=size)
        for i, (path, cls) in enumerate(photos)
    )
    return LabelSnapshot(class_names=CLASSES[:classes], items=items, revision=1, project_path=None)


def make_project(folder: Path, per_class: int = 6, size: int = 40, classes: int = 2):  # -> Project
    """A real project file with generated photos, each labelled by a human."""
    from harapp.core.store import Project

    photos = make_photos(folder / "images", per_class, size, classes)
    project = Project.create(folder / "test.harapp", classes=CLASSES[:classes])
    source = project.add_source("folder", folder / "images", {})
    changes = []
    for path, cls in photos:
        image_id = project.upsert_image(source, path.name, size, size)
        changes.append((image_id, CLASSES[cls]))
    project.set_labels(changes, source="human", reason="test")
    return project


def shown_panel(qtbot, project: Project | None, size: tuple[int, int]) -> TrainingPanel:  # noqa: ANN001
    """A Train panel with the tiny settings above, shown at this size, on the project."""
    from harapp.gui.training_panel import TrainingPanel

    widget = TrainingPanel()
    widget.config_overrides = dict(TINY)
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    widget.set_project(project)
    return widget
