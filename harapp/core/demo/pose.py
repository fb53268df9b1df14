"""Pose a 3-D stick body for one activity and project it to the image plane.

The body lives in a right-handed frame measured in body heights: x points where the person faces, y up,
z to the person's right. Limb angles are measured in the sagittal plane from straight down, positive
forward, so a stride is simply "thigh +25 deg, other thigh -25 deg". Projecting through a rotation about
the vertical axis (never a mirror) keeps COCO's left/right keypoint names true in every view.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
# COCO's own skeleton: 1-based keypoint index pairs.
SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
ACTIVITIES: tuple[str, ...] = ("walking", "running", "sitting", "standing")

THIGH, SHIN, UPPER_ARM, FOREARM = 0.245, 0.235, 0.165, 0.15
TORSO, NECK_TO_HEAD, HEAD_RADIUS = 0.30, 0.105, 0.066
SHOULDER_HALF, HIP_HALF, FOOT = 0.11, 0.08, 0.085

Vec = tuple[float, float, float]


@dataclass(frozen=True)
class BodyPose:
    """Joint positions in body heights; `ground` is the y of the floor or seat the body rests on."""

    activity: str
    joints: dict[str, Vec]
    seat: str  # "none", "chair", "bench" or "ground": what a sitting body rests on
    ground: float


def _limb(start: Vec, flex: float, length: float, abduct: float = 0.0, side: float = 1.0) -> Vec:
    """End of a limb leaving `start`: flex is forward swing from hanging straight down, abduct swings out."""
    f, a = math.radians(flex), math.radians(abduct)
    return (
        start[0] + length * math.sin(f) * math.cos(a),
        start[1] - length * math.cos(f) * math.cos(a),
        start[2] + side * length * math.sin(a),
    )


def _leg(joints: dict[str, Vec], side: str, hip: Vec, thigh: float, knee_bend: float, spread: float) -> None:
    sign = 1.0 if side == "right" else -1.0
    knee = _limb(hip, thigh, THIGH, spread, sign)
    ankle = _limb(knee, thigh - knee_bend, SHIN, spread, sign)
    joints[f"{side}_hip"], joints[f"{side}_knee"], joints[f"{side}_ankle"] = hip, knee, ankle
    # The foot stays roughly level, pointing forward, whatever the shin does.
    joints[f"{side}_toe"] = (ankle[0] + FOOT, ankle[1] - 0.02, ankle[2])


def _arm(
    joints: dict[str, Vec], side: str, shoulder: Vec, flex: float, elbow_bend: float, abduct: float = 4.0,
    forearm_abduct: float | None = None,
) -> None:  # fmt: skip
    sign = 1.0 if side == "right" else -1.0
    elbow = _limb(shoulder, flex, UPPER_ARM, abduct, sign)
    fa = abduct if forearm_abduct is None else forearm_abduct
    wrist = _limb(elbow, flex + elbow_bend, FOREARM, fa, sign)
    joints[f"{side}_shoulder"], joints[f"{side}_elbow"], joints[f"{side}_wrist"] = shoulder, elbow, wrist


def _trunk(joints: dict[str, Vec], lean: float, rng: random.Random) -> tuple[Vec, Vec]:
    """Hips at the origin; returns the two shoulders. Lean tilts the trunk forward."""
    lr = math.radians(lean)
    neck = (TORSO * math.sin(lr), TORSO * math.cos(lr), 0.0)
    head_tilt = math.radians(lean * 0.5 + rng.uniform(-8, 8))
    head = (neck[0] + NECK_TO_HEAD * math.sin(head_tilt), neck[1] + NECK_TO_HEAD * math.cos(head_tilt), 0.0)
    joints["neck"], joints["head"], joints["pelvis"] = neck, head, (0.0, 0.0, 0.0)
    joints["left_hip"], joints["right_hip"] = (0.0, 0.0, -HIP_HALF), (0.0, 0.0, HIP_HALF)
    drop = 0.035
    sx, sy = neck[0] - drop * math.sin(lr), neck[1] - drop * math.cos(lr)
    # Face keypoints: a little in front of the head centre, eyes higher than the nose.
    hx, hy, r = head[0], head[1], HEAD_RADIUS
    joints["nose"] = (hx + r * 0.98, hy - r * 0.12, 0.0)
    joints["left_eye"] = (hx + r * 0.72, hy + r * 0.22, -r * 0.45)
    joints["right_eye"] = (hx + r * 0.72, hy + r * 0.22, r * 0.45)
    joints["left_ear"] = (hx - r * 0.05, hy + r * 0.02, -r * 0.95)
    joints["right_ear"] = (hx - r * 0.05, hy + r * 0.02, r * 0.95)
    return (sx, sy, -SHOULDER_HALF), (sx, sy, SHOULDER_HALF)


def _walking(j: dict[str, Vec], rng: random.Random) -> None:
    ls, rs = _trunk(j, rng.uniform(0, 6), rng)
    amp = rng.uniform(15, 24)
    front = rng.choice(("left", "right"))
    back = "right" if front == "left" else "left"
    # Mid-stride (both feet down, legs apart) reads as walking; vary it a bit off the widest point.
    spread = amp * rng.uniform(0.7, 1.0)
    _leg(j, front, j[f"{front}_hip"], spread, rng.uniform(0, 10), 2)
    _leg(j, back, j[f"{back}_hip"], -spread, rng.uniform(5, 25), 2)
    swing = rng.uniform(12, 28)
    # The arm opposite the forward leg swings forward.
    arm_front = rs if front == "left" else ls
    arm_back = ls if front == "left" else rs
    _arm(j, back, arm_front, swing, rng.uniform(5, 30))
    _arm(j, front, arm_back, -swing, rng.uniform(0, 15))


def _running(j: dict[str, Vec], rng: random.Random) -> str:
    lean = rng.uniform(10, 20)
    ls, rs = _trunk(j, lean, rng)
    front = rng.choice(("left", "right"))
    back = "right" if front == "left" else "left"
    phase = rng.choice(("stance", "flight"))
    if phase == "stance":
        # One leg under the body, the other knee driven high with the heel tucked up behind it.
        _leg(j, back, j[f"{back}_hip"], rng.uniform(-12, 5), rng.uniform(25, 45), 2)
        thigh = rng.uniform(45, 70)
        _leg(j, front, j[f"{front}_hip"], thigh, thigh + rng.uniform(40, 80), 2)
    else:
        # Both feet off the ground: front shin hanging below the knee, rear leg kicked back.
        thigh = rng.uniform(30, 50)
        _leg(j, front, j[f"{front}_hip"], thigh, thigh + rng.uniform(0, 25), 2)
        _leg(j, back, j[f"{back}_hip"], rng.uniform(-35, -20), rng.uniform(50, 100), 2)
    arm_front = rs if front == "left" else ls
    arm_back = ls if front == "left" else rs
    # Runners hold the elbows near a right angle; the forward arm pumps up, the rear one back.
    _arm(j, back, arm_front, lean + rng.uniform(25, 55), rng.uniform(65, 100), 10)
    _arm(j, front, arm_back, lean - rng.uniform(35, 60), rng.uniform(70, 110), 10)
    return phase


def _standing(j: dict[str, Vec], rng: random.Random) -> None:
    ls, rs = _trunk(j, rng.uniform(-3, 3), rng)
    spread = rng.uniform(0, 7)
    for side in ("left", "right"):
        _leg(j, side, j[f"{side}_hip"], rng.uniform(-3, 3), rng.uniform(0, 6), spread)
    style = rng.choices(("hang", "hips", "phone", "crossed", "wave"), (5, 2, 2, 2, 1))[0]
    for side, sh in (("left", ls), ("right", rs)):
        if style == "hang" or (style == "wave" and side == "left") or (style == "phone" and side == "left"):
            _arm(j, side, sh, rng.uniform(-6, 8), rng.uniform(0, 20), rng.uniform(3, 12))
        elif style == "hips":
            _arm(j, side, sh, rng.uniform(-15, 0), rng.uniform(-10, 10), 40, -45)
        elif style == "phone":
            _arm(j, side, sh, rng.uniform(5, 20), rng.uniform(100, 125), 5, -25)
        elif style == "crossed":
            _arm(j, side, sh, rng.uniform(5, 15), rng.uniform(75, 95), 6, -70)
        else:  # a raised hand
            _arm(j, side, sh, rng.uniform(10, 30), rng.uniform(-5, 10), 150, 160)


def _sitting(j: dict[str, Vec], rng: random.Random) -> str:
    seat = rng.choices(("chair", "bench", "ground"), (4, 4, 2))[0]
    if seat == "ground":
        ls, rs = _trunk(j, rng.uniform(-12, 5), rng)
        thigh = rng.uniform(110, 130)  # knees up
        knee_y = -THIGH * math.cos(math.radians(thigh))
        # Choose the shin so the heel comes back down to the floor the hips sit on.
        shin = math.degrees(math.acos(max(-1.0, min(1.0, (knee_y + 0.02) / SHIN))))
        for side in ("left", "right"):
            _leg(j, side, j[f"{side}_hip"], thigh, thigh - shin, 4)
        for side, sh in (("left", ls), ("right", rs)):
            _arm(j, side, sh, rng.uniform(35, 55), rng.uniform(10, 40), 6)
    else:
        ls, rs = _trunk(j, rng.uniform(-8, 10), rng)
        for side in ("left", "right"):
            thigh = rng.uniform(82, 96)
            _leg(j, side, j[f"{side}_hip"], thigh, thigh - rng.uniform(-12, 22), rng.uniform(2, 8))
        for side, sh in (("left", ls), ("right", rs)):
            # Hands rest on the thighs or in the lap.
            _arm(j, side, sh, rng.uniform(0, 25), rng.uniform(45, 80), 6)
    return seat


def pose_body(activity: str, rng: random.Random) -> BodyPose:
    """A randomly varied pose that shows `activity` (one of ACTIVITIES)."""
    joints: dict[str, Vec] = {}
    seat, phase = "none", ""
    if activity == "walking":
        _walking(joints, rng)
    elif activity == "running":
        phase = _running(joints, rng)
    elif activity == "standing":
        _standing(joints, rng)
    elif activity == "sitting":
        seat = _sitting(joints, rng)
    else:
        raise ValueError(f"unknown demo activity {activity!r}; expected one of {ACTIVITIES}")
    lowest = min(joints[k][1] for k in ("left_toe", "right_toe", "left_ankle", "right_ankle")) - 0.025
    if seat == "ground":
        lowest = min(lowest, -0.045)
    lift = rng.uniform(0.02, 0.08) if phase == "flight" else 0.0
    ground = lowest - lift  # a runner in flight floats above the ground line
    return BodyPose(activity, joints, seat, ground)


def project(pose: BodyPose, yaw_deg: float) -> dict[str, tuple[float, float, float]]:
    """Screen x (right), y (up) and depth (away from the camera) of every joint, in body heights.

    yaw 0 faces screen-right in profile, 180 screen-left, 270 faces the camera, 90 shows the back.
    """
    t = math.radians(yaw_deg)
    c, s = math.cos(t), math.sin(t)
    return {k: (x * c + z * s, y - pose.ground, x * s - z * c) for k, (x, y, z) in pose.joints.items()}
