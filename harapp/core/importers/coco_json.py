"""Reading COCO annotation files: JSON loading and validation with errors that name the file and the cause.

Validation runs before anything touches the project, so a bad file never leaves half an import behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, TypeGuard

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
    orphans: int = 0
    """Annotations left out because they name an image id that is not in the file's 'images'."""

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
    except RecursionError as exc:
        raise DatasetError(f"{path}: malformed JSON: arrays or objects nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise DatasetError(f"{path}: malformed JSON: {exc}") from exc


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


MAX_SIDE = 1_000_000
"""Largest width, height or coordinate accepted, in pixels: a gigapixel panorama is about 100,000 wide."""
MAX_KEYPOINTS = 1000
_INT64 = 2**63
_SOURCES = ("caption", "human", "model")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> TypeGuard[int]:
    # SQLite stores ids as signed 64-bit integers; bool is an int to Python but never an id.
    return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64


def _is_number(value: Any, low: float = -MAX_SIDE, high: float = MAX_SIDE) -> bool:
    """A finite int or float within [low, high] (NaN and infinities fail every comparison or the range)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        number = float(value)
    except OverflowError:  # an int beyond a float's range
        return False
    return math.isfinite(number) and low <= number <= high


def _is_text(value: Any) -> TypeGuard[str]:
    """A str that SQLite can store: JSON escapes can spell lone surrogates, which UTF-8 cannot encode."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Checker:
    """Field checks of one file; every failure names the file, the entry and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, field: str, problem: str, value: Any) -> NoReturn:
        raise DatasetError(f"{self.path}: {where}: {field!r} {problem}, found {_show(value)}")

    def text(self, where: str, entry: dict[str, Any], key: str, *, required: bool = True) -> None:
        if key not in entry and not required:
            return
        if not _is_text(entry.get(key)):
            self.fail(where, key, "must be text (UTF-8)", entry.get(key))

    def activity(self, where: str, entry: dict[str, Any]) -> None:
        """The `activity` our own export writes: {label, source, votes, confidence}; label null when unlabelled."""
        activity = entry.get("activity")
        if "activity" not in entry or activity is None:
            return
        if not isinstance(activity, dict):
            self.fail(where, "activity", "must be an object {label, source, votes, confidence}", activity)
        label = activity.get("label")
        if label is not None:
            name = " ".join(label.split()) if _is_text(label) else ""
            if not name or len(name) > 64:
                self.fail(where, "activity.label", "must be a class name of 1 to 64 characters or null", label)
            activity["label"] = name  # as the project stores class names, so the label finds its class
        source = activity.get("source")
        if source is not None and source not in _SOURCES:
            self.fail(where, "activity.source", f"must be one of {', '.join(_SOURCES)} or null", source)
        votes = activity.get("votes")
        if votes is not None and not (
            isinstance(votes, dict) and all(_is_text(k) and _is_int(v) and v >= 0 for k, v in votes.items())
        ):
            self.fail(where, "activity.votes", "must map class names to vote counts", votes)
        confidence = activity.get("confidence")
        if confidence is not None and not _is_number(confidence, 0.0, 1.0):
            self.fail(where, "activity.confidence", "must be a number from 0 to 1 or null", confidence)


def _check_images(images: list[Any], path: Path) -> None:
    check = _Checker(path)
    seen: dict[int, int] = {}
    names: dict[str, int] = {}
    for index, image in enumerate(images):
        where = f"images[{index}]"
        if not isinstance(image, dict):
            raise DatasetError(f"{path}: {where} is not an object, found {_show(image)}")
        image_id = image.get("id")
        file_name = image.get("file_name")
        if not _is_int(image_id):
            raise DatasetError(f"{path}: {where} has no integer 'id', found {_show(image_id)}")
        where = f"images[{index}] (id {image_id})"
        if not isinstance(file_name, str):
            raise DatasetError(f"{path}: {where} has no 'file_name'")
        if not _is_text(file_name) or "\x00" in file_name:
            check.fail(where, "file_name", "must be a file name without NUL characters", file_name)
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
            if key in image and not _is_number(image[key], 0, MAX_SIDE):
                check.fail(where, key, f"must be a number of pixels from 0 to {MAX_SIDE:,}", image[key])
        captions = image.get("captions")
        if captions is not None and not (isinstance(captions, list) and all(_is_text(c) for c in captions)):
            check.fail(where, "captions", "must be a list of texts", captions)
        check.activity(where, image)


def _check_box(check: _Checker, where: str, box: Any) -> None:
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(_is_number(v) for v in box[:2])
        or not all(_is_number(v, 0, MAX_SIDE) for v in box[2:])
    ):
        check.fail(
            where,
            "bbox",
            f"must be [x, y, width, height]: finite numbers, width and height from 0 to {MAX_SIDE:,}",
            box,
        )


def _check_annotations(annotations: list[Any], image_ids: set[int], kind: str, path: Path) -> list[dict[str, Any]]:
    """Validate every field the importer reads; returns the annotations whose image is in 'images'.

    Annotations naming an image missing from 'images' are left out, not refused: subsets made by filtering
    'images' (as pycocotools users often do) leave them behind, and pycocotools itself loads them.
    """
    check = _Checker(path)
    kept: list[dict[str, Any]] = []
    for index, ann in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: {where} is not an object, found {_show(ann)}")
        if "id" not in ann:
            raise DatasetError(f"{path}: {where} has no 'id'")
        if not _is_int(ann["id"]):
            check.fail(where, "id", "must be an integer", ann["id"])
        where = f"annotations[{index}] (id {ann['id']})"
        image_id = ann.get("image_id")
        if not _is_int(image_id):
            check.fail(where, "image_id", "must be an integer", image_id)
        if image_id not in image_ids:
            continue  # nothing else of it is read
        if kind == CAPTIONS:
            if not isinstance(ann.get("caption"), str):
                raise DatasetError(f"{path}: {where} has no text 'caption'")
            check.text(where, ann, "caption")
        else:
            _check_box(check, where, ann.get("bbox"))
            keypoints = ann.get("keypoints")
            if keypoints is not None and (
                not isinstance(keypoints, list)
                or len(keypoints) % 3
                or len(keypoints) > 3 * MAX_KEYPOINTS
                or not all(_is_number(v) for v in keypoints)
            ):
                check.fail(where, "keypoints", "must be a list of finite numbers, three per keypoint", keypoints)
            if ann.get("area") is not None and not _is_number(ann["area"], 0, float(MAX_SIDE) ** 2):
                check.fail(where, "area", "must be a number of pixels, 0 or more", ann["area"])
            if "category_id" in ann and not _is_int(ann["category_id"]):
                check.fail(where, "category_id", "must be an integer", ann["category_id"])
            check.activity(where, ann)
        kept.append(ann)
    return kept


def _check_categories(categories: Any, path: Path) -> None:
    if not isinstance(categories, list):
        raise DatasetError(f"{path}: 'categories' must be a list, found {_show(categories)}")
    check = _Checker(path)
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        if not isinstance(category, dict):
            raise DatasetError(f"{path}: {where} is not an object, found {_show(category)}")
        if not _is_int(category.get("id")):
            check.fail(where, "id", "must be an integer", category.get("id"))
        check.text(where, category, "name", required=False)


def _check_harapp_meta(data: dict[str, Any], path: Path) -> None:
    """The `harapp` object our own COCO export adds: where its images are and the project's classes."""
    if "harapp" not in data:
        return
    meta = data["harapp"]
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: 'harapp' must be an object, found {_show(meta)}")
    images_dir = meta.get("images_dir")
    if images_dir is not None and (not _is_text(images_dir) or "\x00" in images_dir):
        raise DatasetError(f"{path}: 'harapp.images_dir' must be a folder path, found {_show(images_dir)}")
    classes = meta.get("classes")
    if classes is not None and not (
        isinstance(classes, list) and all(_is_text(c) and 0 < len(" ".join(c.split())) <= 64 for c in classes)
    ):
        raise DatasetError(f"{path}: 'harapp.classes' must be a list of class names, found {_show(classes)}")
    if classes:
        meta["classes"] = [" ".join(c.split()) for c in classes]


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
    _check_harapp_meta(data, path)
    kind = _kind_of(data, path)
    kept = _check_annotations(annotations, {im["id"] for im in images}, kind, path)
    if kind == PERSONS:
        _check_categories(data.get("categories", []), path)
    orphans = len(annotations) - len(kept)
    data["annotations"] = kept
    return CocoFile(Path(path), kind, data, orphans)


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
