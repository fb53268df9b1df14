"""Reading COCO annotation files: JSON loading and validation with errors that name the file and the cause.

Validation runs before anything touches the project, so a bad file never leaves half an import behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pycocotools.coco import COCO

from harapp.core.errors import DatasetError

CAPTIONS, PERSONS = "captions", "persons"
_SPLIT_RE = re.compile(r"(?:train|val|test)\d{4}")
_UNUSUAL = ("..", "\\", ":", "//", "/./")


@dataclass
class CocoFile:
    """One validated annotation file; `kind` is CAPTIONS or PERSONS (instances / person_keypoints)."""

    path: Path
    kind: str
    data: dict[str, Any]

    @property
    def split(self) -> str | None:
        """'val2017' for captions_val2017.json: which images folder of a COCO root the file describes."""
        match = _SPLIT_RE.search(self.path.name)
        return match.group(0) if match else None


def load_json(path: Path) -> Any:
    """Parse a JSON file; empty files, bad UTF-8 and syntax errors become DatasetErrors that say where."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: annotation file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if not raw.strip():
        raise DatasetError(f"{path}: the file is empty; expected COCO JSON")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"{path}: not valid UTF-8 at byte offset {exc.start} (byte 0x{raw[exc.start]:02x}); "
            "COCO JSON must be UTF-8 encoded"
        ) from exc
    del raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(text.rstrip()) else ""
        raise DatasetError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}{hint}") from exc


def _require_list(data: dict[str, Any], key: str, path: Path) -> list[Any]:
    if key not in data:
        present = ", ".join(sorted(map(str, data))[:8]) or "none"
        raise DatasetError(f"{path}: not a COCO annotation file: missing key {key!r} (keys present: {present})")
    value = data[key]
    if not isinstance(value, list):
        raise DatasetError(f"{path}: {key!r} must be a list, found {type(value).__name__}")
    return value


def safe_relative(file_name: str) -> str | None:
    """The file name as a clean relative POSIX path, or None when it would escape the images folder."""
    # The common case (COCO's '000000397133.jpg') is checked without building a path object.
    plain = file_name and not file_name.startswith("/") and not any(s in file_name for s in _UNUSUAL)
    if plain:
        return file_name[2:] if file_name.startswith("./") else file_name
    name = file_name.replace("\\", "/")
    pure = PurePosixPath(name)
    if not name or pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", name):
        return None
    return str(pure)


def _check_images(images: list[Any], path: Path) -> None:
    seen: dict[int, int] = {}
    names: dict[str, int] = {}
    for index, image in enumerate(images):
        if not isinstance(image, dict):
            raise DatasetError(f"{path}: images[{index}] is not an object")
        image_id = image.get("id")
        file_name = image.get("file_name")
        if not isinstance(image_id, int) or isinstance(image_id, bool):
            raise DatasetError(f"{path}: images[{index}] has no integer 'id'")
        if not isinstance(file_name, str):
            raise DatasetError(f"{path}: images[{index}] (id {image_id}) has no 'file_name'")
        if image_id in seen:
            raise DatasetError(f"{path}: duplicate image id {image_id} (images[{seen[image_id]}] and images[{index}])")
        seen[image_id] = index
        clean = safe_relative(file_name)
        if clean is None:
            raise DatasetError(f"{path}: image {image_id} has file_name {file_name!r}, which escapes the images folder")
        if clean != file_name:
            image["file_name"] = clean
        if clean in names:
            raise DatasetError(f"{path}: images {names[clean]} and {image_id} both have file_name {clean!r}")
        names[clean] = image_id
        for key in ("width", "height"):
            value = image.get(key, 0)
            if not isinstance(value, (int, float)) or value < 0:
                raise DatasetError(f"{path}: image {image_id} has an invalid {key!r}: {value!r}")


def _check_annotations(annotations: list[Any], image_ids: set[int], kind: str, path: Path) -> None:
    for index, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: annotations[{index}] is not an object")
        image_id = ann.get("image_id")
        if image_id not in image_ids:
            raise DatasetError(f"{path}: annotations[{index}] names image id {image_id!r}, which is not in 'images'")
        if "id" not in ann:
            raise DatasetError(f"{path}: annotations[{index}] has no 'id'")
        if kind == CAPTIONS:
            if not isinstance(ann.get("caption"), str):
                raise DatasetError(f"{path}: annotations[{index}] (id {ann['id']}) has no text 'caption'")
        else:
            box = ann.get("bbox")
            if (
                not isinstance(box, list)
                or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
            ):
                raise DatasetError(f"{path}: annotations[{index}] (id {ann['id']}) has no valid 'bbox' [x, y, w, h]")
            keypoints = ann.get("keypoints")
            if keypoints is not None and (not isinstance(keypoints, list) or len(keypoints) % 3):
                raise DatasetError(f"{path}: annotations[{index}] (id {ann['id']}) has malformed 'keypoints'")


def _kind_of(data: dict[str, Any], path: Path) -> str:
    annotations = data["annotations"]
    if annotations:
        first = annotations[0]
        if isinstance(first, dict) and "caption" in first:
            return CAPTIONS
        if isinstance(first, dict) and "bbox" in first:
            return PERSONS
        raise DatasetError(
            f"{path}: annotations are neither captions (key 'caption') nor boxes (key 'bbox'); "
            "expected COCO captions, instances or person_keypoints"
        )
    return PERSONS if "categories" in data else CAPTIONS


def read_coco_file(path: Path) -> CocoFile:
    """Load and validate one COCO captions / instances / person_keypoints file."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path}: not a COCO annotation file: expected a JSON object with 'images' and 'annotations', "
            f"found a JSON {type(data).__name__}"
        )
    images = _require_list(data, "images", path)
    annotations = _require_list(data, "annotations", path)
    _check_images(images, path)
    kind = _kind_of(data, path)
    _check_annotations(annotations, {im["id"] for im in images}, kind, path)
    categories = data.get("categories", [])
    if kind == PERSONS and not isinstance(categories, list):
        raise DatasetError(f"{path}: 'categories' must be a list")
    return CocoFile(Path(path), kind, data)


def person_category_ids(files: Iterable[CocoFile]) -> set[int]:
    """Category ids named 'person'; COCO's is 1, which is assumed when a file lists no categories."""
    ids: set[int] = set()
    for coco_file in files:
        categories = coco_file.data.get("categories") or []
        ids.update(c["id"] for c in categories if isinstance(c, dict) and c.get("name") == "person" and "id" in c)
        if not categories:
            ids.add(1)
    return ids


def build_index(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> COCO:
    """A pycocotools index over already validated data (its own loader would skip our validation)."""
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations}
    # pycocotools prints progress lines; an importer (or a GUI worker) must not write to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
