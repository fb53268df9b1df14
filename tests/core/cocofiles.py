"""Builders of small, exact COCO datasets for the importer, export and bad-input tests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

PERSON_CATEGORY = {"id": 1, "name": "person", "supercategory": "person"}


@dataclass
class Img:
    id: int
    captions: list[str] = field(default_factory=list)
    persons: list[dict[str, Any]] = field(default_factory=list)
    on_disk: bool = True
    size: tuple[int, int] = (32, 24)

    @property
    def file_name(self) -> str:
        return f"{self.id:012d}.jpg"


def person(ann_id: int, box: tuple[float, float, float, float] = (1, 2, 10, 12), keypoints: bool = False) -> dict:
    ann: dict[str, Any] = {"id": ann_id, "bbox": list(box), "area": box[2] * box[3], "category_id": 1, "iscrowd": 0}
    if keypoints:
        ann["keypoints"] = [5, 5, 2] * 17
        ann["num_keypoints"] = 17
    return ann


def image_entry(img: Img) -> dict[str, Any]:
    return {
        "id": img.id,
        "file_name": img.file_name,
        "width": img.size[0],
        "height": img.size[1],
        "license": 1,
        "coco_url": f"http://example.invalid/{img.file_name}",
    }


def write_coco(
    root: Path,
    images: list[Img],
    split: str = "val2017",
    instances: bool = True,
    keypoints_for: set[int] | None = None,
) -> Path:
    """A COCO root: <root>/<split>/*.jpg (tiny real JPEGs) and <root>/annotations/*.json."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for img in images:
        if img.on_disk:
            Image.new("RGB", img.size, (120, 80, 40)).save(folder / img.file_name, quality=70)
    caption_anns = []
    next_id = 1
    for img in images:
        for text in img.captions:
            caption_anns.append({"id": next_id, "image_id": img.id, "caption": text})
            next_id += 1
    entries = [image_entry(img) for img in images]
    write_json(root / "annotations" / f"captions_{split}.json", {"images": entries, "annotations": caption_anns})
    if instances:
        anns = [{**p, "image_id": img.id} for img in images for p in img.persons]
        doc = {"images": entries, "annotations": anns, "categories": [PERSON_CATEGORY]}
        write_json(root / "annotations" / f"instances_{split}.json", doc)
    if keypoints_for:
        chosen = [img for img in images if img.id in keypoints_for]
        anns = [
            {**p, "image_id": img.id, "keypoints": [5, 5, 2] * 17, "num_keypoints": 17}
            for img in chosen
            for p in img.persons
        ]
        doc = {"images": [image_entry(i) for i in chosen], "annotations": anns, "categories": [PERSON_CATEGORY]}
        write_json(root / "annotations" / f"person_keypoints_{split}.json", doc)
    return root


def write_json(path: Path, doc: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


STANDING = ["A man standing on a hill.", "A man stands near a tree.", "A person standing outside."]
SITTING = ["A woman sitting on a bench.", "A woman sits in the park.", "A lady seated on a bench."]
WALKING = ["A boy walking his dog.", "A boy walks down the street."]
SPLIT_VOTES = ["A man standing near a table.", "A man sitting at a table."]


def small_dataset() -> list[Img]:
    """Five images: three clear labels, one uncertain, one missing on disk; persons on all but one."""
    return [
        Img(101, STANDING, [person(1001), person(1002)]),
        Img(102, SITTING, [person(1003)]),
        Img(103, WALKING, [person(1004)]),
        Img(104, SPLIT_VOTES, [person(1005)]),
        Img(105, ["A plate of food on a table.", "Some food on a plate."], []),
        Img(106, STANDING, [person(1006)], on_disk=False),
    ]
