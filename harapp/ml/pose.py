"""Body pose from MediaPipe's offline pose model: landmarks of a person, features for the head, and boxes of
people in photos that come without annotations.

MediaPipe 0.10.14 is the last release that ships its pose models inside the wheel, so this works offline.
Its legacy pose solution follows one person per call; `detect_people` finds more by greying out each person
found and asking again. Everything here degrades to "no pose" when MediaPipe is missing or fails, so a model
still predicts from the photo alone.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from harapp.core.types import Box
from harapp.ml.persons import FILL, crop_square, square_region

log = logging.getLogger(__name__)

ESTIMATOR_VERSION = "mediapipe-0.10.14-full-v1"
"""Part of every cache key of pose results: a new model or a new way of running it invalidates them."""

LANDMARKS = 33
POSE_INPUT = 256
"""Side of the square person crop the landmark model sees (it works at 256 px internally)."""
MIN_DETECTION_CONFIDENCE = 0.5
MAX_PEOPLE = 3
"""Passes of the one-person model over a photo; the third person found is rarely the main one."""

# MediaPipe's landmark indices for the joints the features use.
NOSE, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 0, 11, 12, 13, 14, 15, 16
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE, L_FOOT, R_FOOT = 23, 24, 25, 26, 27, 28, 31, 32
JOINTS = (NOSE, L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST, L_HIP, R_HIP, L_KNEE, R_KNEE,
          L_ANKLE, R_ANKLE)  # fmt: skip
POSE_DIM = 2 * len(JOINTS) + len(JOINTS) + 8 + 4 + 12 + 3
"""Length of pose_features(): joint coordinates, visibilities, joint angles (each side and the smaller and
larger of each pair, so a mirrored pose reads alike), limb directions, extent and the 'pose found' flag."""


@dataclass(frozen=True)
class PersonFound:
    """A person the pose model found in a photo: the box around the landmarks, in photo pixels."""

    box: Box
    landmarks: np.ndarray
    """LANDMARKS x 4 (x, y, z, visibility), x and y relative to the photo's width and height."""


class PoseUnavailableError(RuntimeError):
    """MediaPipe is not installed or cannot start on this machine."""


_local = threading.local()
_unavailable: list[str] = []


def unavailable_reason() -> str | None:
    """Why pose estimation cannot run here, or None when it can (tries to start it once per process)."""
    try:
        _estimator()
    except PoseUnavailableError as exc:
        return str(exc)
    return None


def _estimator() -> Any:
    """One MediaPipe pose graph per thread: a graph must not be used by two threads at once."""
    if _unavailable:
        raise PoseUnavailableError(_unavailable[0])
    graph = getattr(_local, "pose", None)
    if graph is None:
        try:
            # protobuf 4 warns on every call mediapipe 0.10.14 makes into it; the warning is about
            # mediapipe's own code and says nothing to a harapp user.
            warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
            import mediapipe as mp

            graph = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, min_detection_confidence=MIN_DETECTION_CONFIDENCE
            )
        except Exception as exc:  # noqa: BLE001 - an import or graph error of any kind means "no pose here"
            reason = f"MediaPipe pose estimation is unavailable ({type(exc).__name__}: {exc})"
            log.warning("%s; predictions use the photo without body pose", reason)
            _unavailable.append(reason)
            raise PoseUnavailableError(reason) from exc
        _local.pose = graph
    return graph


def landmarks_of(img: Image.Image) -> np.ndarray | None:
    """The landmarks (LANDMARKS x 4) of the most prominent person in an RGB image, or None."""
    graph = _estimator()
    result = graph.process(np.asarray(img.convert("RGB")))
    if not result.pose_landmarks:
        return None
    points = result.pose_landmarks.landmark
    return np.array([[p.x, p.y, p.z, p.visibility] for p in points], dtype=np.float32)


def person_pose(img: Image.Image, box: Box) -> np.ndarray | None:
    """Landmarks of the person in a box, found on the same padded square the person view sees."""
    return landmarks_of(crop_square(img, square_region(box), POSE_INPUT))


def box_from_landmarks(landmarks: np.ndarray, width: int, height: int) -> Box:
    """A person box around the visible landmarks, grown to where COCO's boxes end: the top of the head lies
    above the eyes, and the soles a little below the ankle and toe points."""
    visible = landmarks[landmarks[:, 3] > 0.3]
    points = visible if len(visible) >= 4 else landmarks
    x0, x1 = float(points[:, 0].min()) * width, float(points[:, 0].max()) * width
    y0, y1 = float(points[:, 1].min()) * height, float(points[:, 1].max()) * height
    w, h = x1 - x0, y1 - y0
    left, right = max(0.0, x0 - 0.1 * w), min(float(width), x1 + 0.1 * w)
    top, bottom = max(0.0, y0 - 0.15 * h), min(float(height), y1 + 0.08 * h)
    return (left, top, max(0.0, right - left), max(0.0, bottom - top))


def detect_people(img: Image.Image, max_people: int = MAX_PEOPLE) -> list[PersonFound]:
    """People in a photo, most prominent first: each pass finds one, then greys them out for the next."""
    work = img.convert("RGB").copy()
    found: list[PersonFound] = []
    for _ in range(max_people):
        landmarks = landmarks_of(work)
        if landmarks is None:
            break
        box = box_from_landmarks(landmarks, img.width, img.height)
        if box[2] < 2 or box[3] < 2:
            break
        found.append(PersonFound(box, landmarks))
        x, y, w, h = box
        ImageDraw.Draw(work).rectangle([x, y, x + w, y + h], fill=FILL)
    return found


# -- features for the head ---------------------------------------------------------------------------------


def _cos_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Cosine of the angle at b between b->a and b->c, per row: 1 folded shut, -1 straight."""
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-6)
    return np.clip(cos, -1.0, 1.0)


def _direction(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Unit vector of a limb, per row: its sine and cosine against the downward vertical of the image."""
    v = end - start
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6)


def pose_features(landmarks: np.ndarray | None) -> np.ndarray:
    """A fixed-length vector describing a body pose for a linear head; zeros (found flag 0) without a pose."""
    if landmarks is None:
        return np.zeros(POSE_DIM, dtype=np.float32)
    return pose_features_many(landmarks[None])[0]


def pose_features_many(landmarks: np.ndarray) -> np.ndarray:
    """pose_features of N poses at once (N x LANDMARKS x 4 -> N x POSE_DIM): a project's photos in one pass.

    Coordinates are relative to the hip centre in torso lengths, so the person's size and place in the
    crop do not matter; knee and hip angles separate sitting from standing, limb directions and the stride
    (ankle spread) separate walking and running from standing.
    """
    p = landmarks[:, :, :2].astype(np.float64)
    visibility = landmarks[:, :, 3]
    hips = (p[:, L_HIP] + p[:, R_HIP]) / 2
    shoulders = (p[:, L_SHOULDER] + p[:, R_SHOULDER]) / 2
    torso = np.linalg.norm(shoulders - hips, axis=-1) + 1e-3
    joints = p[:, list(JOINTS)]
    coords = np.clip((joints - hips[:, None]) / torso[:, None, None], -6, 6).reshape(len(p), -1)
    angles = np.stack(
        [
            _cos_angle(p[:, L_SHOULDER], p[:, L_HIP], p[:, L_KNEE]),
            _cos_angle(p[:, R_SHOULDER], p[:, R_HIP], p[:, R_KNEE]),
            _cos_angle(p[:, L_HIP], p[:, L_KNEE], p[:, L_ANKLE]),
            _cos_angle(p[:, R_HIP], p[:, R_KNEE], p[:, R_ANKLE]),
            _cos_angle(p[:, L_SHOULDER], p[:, L_ELBOW], p[:, L_WRIST]),
            _cos_angle(p[:, R_SHOULDER], p[:, R_ELBOW], p[:, R_WRIST]),
            _cos_angle(p[:, L_KNEE], p[:, L_HIP], p[:, R_HIP]),
            _cos_angle(p[:, R_KNEE], p[:, R_HIP], p[:, L_HIP]),
        ],
        axis=1,
    )
    mirrored = np.stack(
        [
            np.minimum(angles[:, 0], angles[:, 1]), np.maximum(angles[:, 0], angles[:, 1]),
            np.minimum(angles[:, 2], angles[:, 3]), np.maximum(angles[:, 2], angles[:, 3]),
        ],
        axis=1,
    )  # fmt: skip
    directions = np.concatenate(
        [
            _direction(hips, shoulders), _direction(p[:, L_HIP], p[:, L_KNEE]), _direction(p[:, R_HIP], p[:, R_KNEE]),
            _direction(p[:, L_KNEE], p[:, L_ANKLE]), _direction(p[:, R_KNEE], p[:, R_ANKLE]),
            _direction(p[:, L_ANKLE], p[:, L_FOOT]),
        ],
        axis=1,
    )  # fmt: skip
    extent = np.stack(
        [
            (joints[:, :, 1].max(1) - joints[:, :, 1].min(1)) / torso,
            np.abs(p[:, L_ANKLE, 0] - p[:, R_ANKLE, 0]) / torso,
            np.ones(len(p)),  # a pose was found
        ],
        axis=1,
    )
    values = np.concatenate([coords, visibility[:, list(JOINTS)], angles, mirrored, directions, extent], axis=1)
    return values.astype(np.float32)


def encode_people(people: Sequence[PersonFound]) -> bytes:
    """People found in a photo as bytes for the project's vector cache (empty: nobody found)."""
    rows = [np.concatenate([np.asarray(p.box, np.float32), p.landmarks.ravel()]) for p in people]
    return np.stack(rows).astype(np.float32).tobytes() if rows else b""


def decode_people(blob: bytes) -> list[PersonFound]:
    if not blob:
        return []
    rows = np.frombuffer(blob, dtype=np.float32).reshape(-1, 4 + LANDMARKS * 4)
    return [PersonFound(tuple(float(v) for v in r[:4]), r[4:].reshape(LANDMARKS, 4).copy()) for r in rows]  # type: ignore[arg-type]
