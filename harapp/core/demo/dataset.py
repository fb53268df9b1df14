"""A procedural mini-COCO dataset of people walking, running, sitting and standing.

It lets the app be tried, and its training path tested, with no COCO photos at hand: every image is
drawn from a posed 17-keypoint skeleton, so the activity is visible to a small CNN, and comes with
COCO-format captions (some deliberately misleading) and person keypoints. Everything follows from the
seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from harapp.core.atomic import atomic_write_text
from harapp.core.demo.captions import NOISY_SHARE, assign_noise, make_captions
from harapp.core.demo.figure import Figure, draw_figure, inside, random_look
from harapp.core.demo.pose import ACTIVITIES, HEAD_RADIUS, KEYPOINT_NAMES, SKELETON, BodyPose, pose_body, project
from harapp.core.demo.scene import SCENES, Occluder, draw_seat, paint_background, random_occluder

SIZES: tuple[tuple[int, int], ...] = ((320, 240), (256, 192), (288, 216), (240, 320), (320, 256), (192, 256))
SUPERSAMPLE = 2  # drawn at twice the size and reduced: smooth edges for little cost
DATE = "2024-01-01 00:00:00"  # fixed, so the JSON does not change from run to run
_IMAGE_NAME = re.compile(r"demo_\d{6}\.jpg")


@dataclass(frozen=True)
class DemoImage:
    image: Image.Image
    figures: tuple[Figure, ...]  # the main person first
    scene: str
    seat: str
    look: dict[str, str]


def _yaw(activity: str, rng: random.Random) -> float:
    """Mostly side views for movement (the stride shows), mostly front views for standing."""
    if activity == "standing" and rng.random() < 0.7:
        return 270.0 + rng.uniform(-55, 55)
    turn = rng.uniform(0, {"walking": 35, "running": 30, "sitting": 45, "standing": 40}[activity])
    # Turning towards the camera (yaw 270), never away, so faces stay visible.
    return 360.0 - turn if rng.random() < 0.5 else 180.0 + turn


def _extent(pose: BodyPose, yaw: float) -> tuple[float, float, float]:
    """Left, right and top of the drawn body in body heights, around the pelvis and above the ground."""
    proj = project(pose, yaw)
    xs = [p[0] for p in proj.values()]
    top = max(p[1] for p in proj.values()) + HEAD_RADIUS + 0.02
    return min(xs) - 0.08, max(xs) + 0.08, top


def _place(pose: BodyPose, yaw: float, size: tuple[int, int], foot_y: float, frac: float,
           rng: random.Random) -> tuple[float, tuple[float, float]]:  # fmt: skip
    """A scale (px per body height) and a ground point that keep the whole body inside the image."""
    w, h = size
    left, right, top = _extent(pose, yaw)
    scale = min(frac * h, (foot_y - 0.03 * h) / top, 0.94 * w / (right - left))
    lo, hi = 0.03 * w - left * scale, 0.97 * w - right * scale
    return scale, (rng.uniform(lo, max(lo, hi)), foot_y)


def _shadow(canvas: Image.Image, pose: BodyPose, yaw: float, scale: float, origin: tuple[float, float]) -> None:
    """A darker patch of the ground under the body: it anchors the feet, and a runner's gap above it shows."""
    left, right, _ = _extent(pose, yaw)
    ss = SUPERSAMPLE
    x, y = origin[0] * ss, origin[1] * ss
    px = canvas.getpixel((min(max(int(x), 0), canvas.width - 1), min(int(y), canvas.height - 1)))
    colour = tuple(int(c * 0.72) for c in px)  # type: ignore[union-attr]
    half_h = 0.035 * scale * ss
    ImageDraw.Draw(canvas).ellipse((x + left * scale * ss, y - half_h, x + right * scale * ss, y + half_h), fill=colour)


def render_image(activity: str, rng: random.Random, nrng: np.random.Generator) -> DemoImage:
    """One picture of a person doing `activity`, with annotations for every person drawn."""
    size = rng.choice(SIZES)
    w, h = size
    scene = rng.choice(SCENES)
    horizon = int(h * rng.uniform(0.3, 0.55))
    canvas = paint_background(scene, size, horizon, SUPERSAMPLE, rng, nrng)
    draw = ImageDraw.Draw(canvas)

    pose, yaw, look = pose_body(activity, rng), _yaw(activity, rng), random_look(rng)
    foot_y = rng.uniform(horizon + 0.45 * (h - horizon), h * 0.97)
    frac = rng.uniform(0.55, 0.9) if pose.seat != "ground" else rng.uniform(0.7, 1.1)
    scale, origin = _place(pose, yaw, size, foot_y, frac, rng)

    figures: list[Figure] = []
    if rng.random() < 0.25:  # a smaller person further back, kept clear of the main one
        bg_act = rng.choice(ACTIVITIES)
        bg_pose, bg_yaw, bg_look = pose_body(bg_act, rng), _yaw(bg_act, rng), random_look(rng)
        bg_foot = rng.uniform(horizon + 2, max(horizon + 3, foot_y - 0.25 * scale))
        bg_scale, bg_origin = _place(bg_pose, bg_yaw, size, bg_foot, rng.uniform(0.25, 0.4), rng)
        left, right, _ = _extent(pose, yaw)
        main_lo, main_hi = origin[0] + left * scale, origin[0] + right * scale
        bl, br, _ = _extent(bg_pose, bg_yaw)
        if bg_origin[0] + br * bg_scale < main_lo or bg_origin[0] + bl * bg_scale > main_hi:
            _shadow(canvas, bg_pose, bg_yaw, bg_scale, bg_origin)
            draw_seat(draw, bg_pose, bg_yaw, bg_scale, bg_origin, SUPERSAMPLE, rng)
            figures.append(draw_figure(draw, bg_pose, bg_yaw, bg_scale, bg_origin, bg_look, size, SUPERSAMPLE))

    occluder: Occluder | None = random_occluder(rng, origin, scale, size) if rng.random() < 0.2 else None
    _shadow(canvas, pose, yaw, scale, origin)
    draw_seat(draw, pose, yaw, scale, origin, SUPERSAMPLE, rng)
    main = draw_figure(draw, pose, yaw, scale, origin, look, size, SUPERSAMPLE,
                       occluder.covers if occluder is not None else None)  # fmt: skip
    if occluder is not None:
        occluder.paint(draw, SUPERSAMPLE)
    figures = [main] + [_behind(f, main, occluder) for f in figures]
    image = canvas.reduce(SUPERSAMPLE)
    words = {"gender": look.gender, "shirt": look.shirt_name, "pants": look.pants_name, "hair": look.hair_name}
    return DemoImage(image, tuple(figures), scene, pose.seat, words)


def _behind(fig: Figure, front: Figure, occluder: Occluder | None) -> Figure:
    """Mark a background person's keypoints hidden where the main person or the occluder covers them."""
    hull = list(front.hull)
    kps = tuple(
        (x, y, 1 if v == 2 and (inside(hull, (x, y)) or (occluder is not None and occluder.covers((x, y)))) else v)
        for x, y, v in fig.keypoints
    )
    return Figure(kps, fig.box, fig.hull, fig.points)


def _balanced(n: int, rng: random.Random) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        block = list(ACTIVITIES)
        rng.shuffle(block)
        out.extend(block)
    return out[:n]


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    return abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))) / 2


def _person_annotation(ann_id: int, image_id: int, fig: Figure) -> dict[str, Any]:
    flat = [c for kp in fig.keypoints for c in kp]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "segmentation": [[c for p in fig.hull for c in p]],
        "area": round(_polygon_area(fig.hull), 2),
        "bbox": list(fig.box),
        "iscrowd": 0,
        "num_keypoints": sum(1 for kp in fig.keypoints if kp[2] > 0),
        "keypoints": flat,
    }


def make_demo(
    out_dir: Path, n_images: int = 200, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write a mini-COCO dataset of `n_images` drawn people to `out_dir` and return `out_dir`.

    Layout: images/demo_000001.jpg..., annotations/captions_demo.json, annotations/person_keypoints_demo.json,
    README.txt. Image entries carry the true activity as the non-standard key "demo_truth" and the kind of
    caption noise as "demo_caption_noise"; importers must not rely on either.
    """
    if n_images < 1:
        raise ValueError(f"n_images must be at least 1, got {n_images}")
    out_dir = Path(out_dir)
    images_dir, ann_dir = out_dir / "images", out_dir / "annotations"
    images_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    master = random.Random(f"harapp-demo:{seed}")
    truths, noises = _balanced(n_images, master), assign_noise(n_images, master)
    images: list[dict[str, Any]] = []
    captions: list[dict[str, Any]] = []
    persons: list[dict[str, Any]] = []
    names: set[str] = set()
    for i in range(n_images):
        # A string seed is hashed with SHA-512, so the stream is the same on every run and platform.
        rng = random.Random(f"harapp-demo:{seed}:{i}")
        demo = render_image(truths[i], rng, np.random.default_rng(rng.getrandbits(64)))
        image_id, file_name = i + 1, f"demo_{i + 1:06d}.jpg"
        names.add(file_name)
        demo.image.save(images_dir / file_name, "JPEG", quality=90)
        images.append({
            "id": image_id, "file_name": file_name, "width": demo.image.width, "height": demo.image.height,
            "license": 1, "date_captured": DATE, "demo_truth": truths[i], "demo_caption_noise": noises[i],
        })  # fmt: skip
        for text in make_captions(truths[i], noises[i], demo.scene, demo.seat, demo.look, rng):
            captions.append({"id": len(captions) + 1, "image_id": image_id, "caption": text})
        for fig in demo.figures:
            persons.append(_person_annotation(len(persons) + 1, image_id, fig))
        if progress is not None:
            progress(i + 1, n_images)
    for stale in images_dir.iterdir():  # left over from an earlier, bigger demo
        if _IMAGE_NAME.fullmatch(stale.name) and stale.name not in names:
            stale.unlink()

    info = {
        "description": f"harapp procedural demo dataset ({n_images} images, seed {seed})",
        "url": "", "version": "1.0", "year": 2024, "contributor": "harapp", "date_created": DATE,
    }  # fmt: skip
    licenses = [{"id": 1, "name": "CC0 1.0 (generated by harapp)",
                 "url": "https://creativecommons.org/publicdomain/zero/1.0/"}]  # fmt: skip
    category = {
        "id": 1, "name": "person", "supercategory": "person", "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [list(pair) for pair in SKELETON],
    }  # fmt: skip
    base = {"info": info, "licenses": licenses, "images": images}
    atomic_write_text(ann_dir / "captions_demo.json", json.dumps({**base, "annotations": captions}, indent=1))
    keypoints_doc = {**base, "annotations": persons, "categories": [category]}
    atomic_write_text(ann_dir / "person_keypoints_demo.json", json.dumps(keypoints_doc, indent=1))
    atomic_write_text(out_dir / "README.txt", _readme(n_images, seed))
    return out_dir


def _readme(n_images: int, seed: int) -> str:
    return (
        "harapp demo dataset\n"
        "===================\n\n"
        f"{n_images} procedurally drawn pictures (seed {seed}) of people walking, running, sitting and\n"
        "standing, in the layout of the COCO 2017 dataset:\n\n"
        "  images/                              demo_000001.jpg, ...\n"
        "  annotations/captions_demo.json       3-5 captions per image (COCO captions format)\n"
        "  annotations/person_keypoints_demo.json  person boxes and 17 keypoints (COCO keypoints format)\n\n"
        "No photo in it shows a real person: harapp drew every image from a posed stick skeleton.\n"
        f"About {round(100 * NOISY_SHARE)}% of the images have unhelpful captions on purpose (they disagree, name\n"
        "the activity once or never, or name a wrong one), so the weak labels derived from captions are\n"
        'worth correcting. Each image entry carries its true activity as "demo_truth" and its caption\n'
        'noise as "demo_caption_noise"; these keys are not part of COCO and only serve tests.\n'
        "Regenerate with: harapp demo (same seed, same files).\n"
    )
