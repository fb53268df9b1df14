"""Who each photo is about, and their pose: annotation boxes first, the pose model's people otherwise.

Training and project-wide prediction resolve every photo once per run (`resolve_people`) and keep the
results in the project's vector cache, so a retrain decodes no photo for this. A single dropped photo goes
through `person_input` directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from PIL import Image

from harapp.core.errors import ImageFileError
from harapp.core.types import Box, LabelledItem
from harapp.ml import pose as P
from harapp.ml.images import load_image
from harapp.ml.persons import main_person
from harapp.ml.progress import Reporter
from harapp.ml.vector_cache import BoxRows
from harapp.ml.views import View, needs_person

log = logging.getLogger(__name__)

PersonSource = Literal["annotation", "detector", "user", "none"]
PEOPLE_KEY = f"people:{P.ESTIMATOR_VERSION}"
POSE_KEY = f"pose:{P.ESTIMATOR_VERSION}:crop2"
"""crop2: the person's square is resized before padding (persons.crop_square with a size), a pixel apart at
the edges from the first version, so poses cached before it are read again."""
_POSE_ROW = 1 + P.LANDMARKS * 4  # found flag, then the landmarks


class VectorStore(Protocol):
    """The project's cache of per-image vectors (harapp.core.store's embeddings table)."""

    def get_embeddings(self, model_key: str, image_ids: Sequence[int]) -> dict[int, bytes]: ...
    def put_embeddings(self, model_key: str, vectors: dict[int, bytes]) -> None: ...


@dataclass(frozen=True)
class PersonInput:
    """The person a photo's person and pose views show."""

    box: Box | None
    """The main person's box in photo pixels; None: nobody found, the person view shows the whole photo."""
    source: PersonSource
    pose: np.ndarray | None
    """pose_features() of that person (zeros when no pose was found); None when the model has no pose view."""

    @property
    def pose_found(self) -> bool:
        return self.pose is not None and bool(self.pose[-1] > 0)

    def describe(self) -> str:
        if self.box is None:
            return "no person found: whole photo only"
        where = {"annotation": "annotated person", "detector": "detected person", "user": "chosen person"}
        text = where.get(self.source, "person")
        return text + ("" if self.pose is None or self.pose_found else ", no body pose found")


NOBODY = PersonInput(None, "none", None)


def person_input(
    img: Image.Image,
    views: Sequence[View],
    boxes: Sequence[Box] = (),
    *,
    user_box: Box | None = None,
    detect: bool = True,
    detected: Sequence[Box] | None = None,
) -> PersonInput:
    """The person input of one photo, uncached: a box the user drew, else the largest annotated box, else the
    largest person the pose model finds (when `detect`; `detected` gives its boxes when the caller has them
    already), else nobody."""
    if not needs_person(views):
        return NOBODY
    box, source = _choose_box(img, boxes, user_box, detect, detected)
    pose = None
    if "pose" in views:
        pose = P.pose_features(_landmarks_or_none(img, box) if box is not None else None)
    return PersonInput(box, source, pose)


def _choose_box(
    img: Image.Image, boxes: Sequence[Box], user_box: Box | None, detect: bool, detected: Sequence[Box] | None
) -> tuple[Box | None, PersonSource]:
    if user_box is not None:
        chosen = main_person([user_box], img.width, img.height)
        if chosen is not None:
            return chosen, "user"
    annotated = main_person(boxes, img.width, img.height)
    if annotated is not None:
        return annotated, "annotation"
    if detect:
        found = [p.box for p in _people_or_none(img)] if detected is None else list(detected)
        largest = main_person(found, img.width, img.height)
        if largest is not None:
            return largest, "detector"
    return None, "none"


def detect_boxes(img: Image.Image) -> list[Box]:
    """Boxes of the people the pose model finds (largest first); [] when it finds none or cannot run."""
    return sorted((p.box for p in _people_or_none(img)), key=lambda b: -b[2] * b[3])


def _people_or_none(img: Image.Image) -> list[P.PersonFound]:
    try:
        return P.detect_people(img)
    except P.PoseUnavailableError:
        return []


def _landmarks_or_none(img: Image.Image, box: Box) -> np.ndarray | None:
    try:
        return P.person_pose(img, box)
    except P.PoseUnavailableError:
        return None


# -- many photos, cached -----------------------------------------------------------------------------------


def resolve_people(
    items: Sequence[LabelledItem],
    views: Sequence[View],
    store: VectorStore | None,
    reporter: Reporter,
    *,
    detect: bool = True,
) -> list[PersonInput]:
    """The person input of every item, in order; photos are decoded only for what the cache lacks.

    An item lists the boxes of its image (an image-level label) or of its one person (a person label), so
    one image may appear with several boxes: pose results are cached per image and box.
    """
    if not needs_person(views):
        return [NOBODY] * len(items)
    want_pose = "pose" in views
    ids = sorted({it.image_id for it in items})
    people_cache = store.get_embeddings(PEOPLE_KEY, ids) if store is not None and detect else {}
    pose_cache = store.get_embeddings(POSE_KEY, ids) if store is not None and want_pose else {}
    # An image's cached pose rows are decoded when one of its items needs them, and kept only where a row is
    # added: decoding all of them at once held an array per box (200 MB for `harapp review` of 100k photos).
    touched_pose: dict[int, BoxRows] = {}
    new_people: dict[int, bytes] = {}
    chosen: list[tuple[Box | None, PersonSource]] = []
    landmark_rows: dict[int, np.ndarray] = {}  # item position -> landmarks, for the poses found
    reporter.start_phase("people")
    for n, item in enumerate(items, start=1):
        photo = _Photo(item)
        box, source = _cached_box(item, photo, people_cache, new_people, detect)
        chosen.append((box, source))
        if want_pose and box is not None:
            rows = touched_pose.get(item.image_id)
            if rows is None:
                rows = BoxRows.decode(pose_cache.get(item.image_id, b""), _POSE_ROW)
            row = rows.find(box)
            if row is None:
                img = photo.image()
                landmarks = _landmarks_or_none(img, box) if img is not None else None
                row = np.concatenate([[0.0 if landmarks is None else 1.0], _flat(landmarks)]).astype(np.float32)
                rows.add(box, row)
                touched_pose[item.image_id] = rows
            if row[0] > 0:
                landmark_rows[n - 1] = row[1:].reshape(P.LANDMARKS, 4)
        reporter.step(epoch=1, epochs=1, step=n, steps=len(items), images=1)
    poses = np.zeros((len(items), P.POSE_DIM), np.float32)
    if landmark_rows:  # all found poses in one vectorised pass: a per-photo loop cost a third of a retrain
        positions = sorted(landmark_rows)
        poses[positions] = P.pose_features_many(np.stack([landmark_rows[i] for i in positions]))
    out = [PersonInput(box, source, poses[i] if want_pose else None) for i, (box, source) in enumerate(chosen)]
    if store is not None and new_people:
        store.put_embeddings(PEOPLE_KEY, new_people)
    if store is not None and touched_pose:
        store.put_embeddings(POSE_KEY, {i: rows.encode() for i, rows in touched_pose.items()})
    return out


class _Photo:
    """An item's photo, decoded on first use only: most runs find everything in the cache."""

    def __init__(self, item: LabelledItem) -> None:
        self.item = item
        self._image: Image.Image | None = None
        self._failed = False

    def image(self) -> Image.Image | None:
        if self._image is None and not self._failed:
            try:
                self._image = load_image(self.item.path)
            except ImageFileError as exc:  # the trainer reports unreadable photos itself when it needs pixels
                log.info("no person or pose for %s: %s", self.item.path, exc)
                self._failed = True
        return self._image


def _cached_box(
    item: LabelledItem, photo: _Photo, cache: dict[int, bytes], new: dict[int, bytes], detect: bool
) -> tuple[Box | None, PersonSource]:
    # A project may not know an image's size (0 until the photo is read), and then bounds nothing.
    width = item.width if item.width > 0 else _UNBOUNDED
    height = item.height if item.height > 0 else _UNBOUNDED
    annotated = main_person(item.person_boxes, width, height)
    if annotated is not None:
        return annotated, "annotation"
    if not detect:
        return None, "none"
    blob = cache.get(item.image_id, new.get(item.image_id))
    if blob is None:
        img = photo.image()
        if img is None:
            return None, "none"
        blob = P.encode_people(_people_or_none(img))
        new[item.image_id] = blob
    found = P.decode_people(blob)
    detected = main_person([p.box for p in found], _UNBOUNDED, _UNBOUNDED)  # found inside the decoded photo
    return (detected, "detector") if detected is not None else (None, "none")


_UNBOUNDED = 1 << 30


def _flat(landmarks: np.ndarray | None) -> np.ndarray:
    return np.zeros(P.LANDMARKS * 4, np.float32) if landmarks is None else landmarks.ravel().astype(np.float32)
