"""A small generated project for the curation GUI tests: every kind of row the gallery must show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from harapp.core.store import Project
from harapp.core.types import StoredPrediction

CLASSES = ("walking", "running", "sitting", "standing")


@dataclass(frozen=True)
class CurationProject:
    path: Path
    ids: tuple[int, ...]
    """Image ids in id order: 0-3 caption-labelled, 4-5 human, 6-7 uncertain, 8-10 unlabelled, 11 missing file."""
    model_id: int
    persons: tuple[int, ...]
    """Person ids of image ids[0] (two persons, the first with keypoints)."""


def _photo(path: Path, index: int, size: tuple[int, int] = (64, 48)) -> None:
    img = Image.new("RGB", size, (40 + 17 * index % 200, 90, 160 - 9 * index % 150))
    draw = ImageDraw.Draw(img)
    draw.rectangle((8 + index % 20, 8, 24 + index % 20, 40), fill=(240, 230, 200))
    img.save(path, quality=85)


def make_curation_project(folder: Path, n_images: int = 12) -> CurationProject:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    project = Project.create(folder / "curation.harapp", classes=CLASSES)
    try:
        source = project.add_source("test", images, {})
        ids = []
        for i in range(n_images):
            name = f"img{i:03d}.jpg"
            if i != 11:  # image 11 is named by the project but absent from the disk
                _photo(images / name, i)
            captions = (f"a person {CLASSES[i % 4]} in the park number {i}", f"someone {CLASSES[i % 4]} outside")
            votes = {CLASSES[i % 4]: 2} if i < 6 else ({"walking": 1, "sitting": 1} if i in (6, 7) else {})
            ids.append(project.upsert_image(source, name, 64, 48, coco_id=5000 + i, captions=captions, votes=votes))
        for i in range(4):
            project.set_label(ids[i], CLASSES[i % 4], "caption", votes={CLASSES[i % 4]: 2}, reason="import")
        project.set_label(ids[4], "walking", "human")
        project.set_label(ids[5], "running", "human")
        keypoints = [float(v) for k in range(17) for v in (20 + k, 10 + 2 * k, 2)]
        persons = (
            project.add_person(ids[0], (10, 6, 20, 36), keypoints=keypoints, coco_id=1),
            project.add_person(ids[0], (34, 10, 22, 34), coco_id=2),
        )
        model_id = project.register_model("m", "cnn-scratch", "scratch", folder / "m.pt", 1, {}, {})
        # The model agrees with images 0 and 4, disagrees with 1 and 5, and is unsure about image 8.
        predictions = {
            ids[0]: StoredPrediction(
                "walking", 0.9, {"walking": 0.9, "running": 0.05, "sitting": 0.03, "standing": 0.02}
            ),
            ids[1]: StoredPrediction("sitting", 0.6, {"walking": 0.1, "running": 0.2, "sitting": 0.6, "standing": 0.1}),
            ids[4]: StoredPrediction(
                "walking", 0.8, {"walking": 0.8, "running": 0.1, "sitting": 0.05, "standing": 0.05}
            ),
            ids[5]: StoredPrediction(
                "standing", 0.7, {"walking": 0.1, "running": 0.1, "sitting": 0.1, "standing": 0.7}
            ),
            ids[8]: StoredPrediction(
                "sitting", 0.4, {"walking": 0.1, "running": 0.15, "sitting": 0.4, "standing": 0.35}
            ),
        }
        project.put_predictions(model_id, predictions)
        project.set_active_model(model_id)
    finally:
        project.close()
    return CurationProject(folder / "curation.harapp", tuple(ids), model_id, persons)
