"""Draw one posed body with PIL and work out what a COCO annotator would record for it.

Parts are painted back to front by depth, so the far arm disappears behind the torso and a sitting
person's near thigh covers the chest, which is what makes a flat drawing read as a body.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageDraw

from harapp.core.demo.pose import HEAD_RADIUS, KEYPOINT_NAMES, BodyPose, project

RGB = tuple[int, int, int]
Point = tuple[float, float]

SKINS: tuple[RGB, ...] = ((245, 208, 180), (224, 172, 138), (198, 134, 96), (141, 85, 54), (92, 56, 38))
HAIRS: tuple[tuple[str, RGB], ...] = (
    ("black", (30, 24, 20)), ("dark", (70, 45, 25)), ("brown", (120, 80, 40)), ("blond", (200, 170, 100)),
    ("grey", (150, 150, 150)),
)  # fmt: skip
SHIRTS: tuple[tuple[str, RGB], ...] = (
    ("red", (200, 40, 40)), ("blue", (40, 80, 200)), ("green", (50, 150, 60)), ("yellow", (230, 200, 40)),
    ("white", (235, 235, 235)), ("black", (35, 35, 40)), ("orange", (235, 130, 30)), ("purple", (130, 60, 160)),
    ("pink", (235, 140, 180)), ("grey", (130, 130, 135)), ("striped", (90, 110, 170)), ("teal", (30, 140, 140)),
)  # fmt: skip
PANTS: tuple[tuple[str, RGB], ...] = (
    ("blue jeans", (50, 70, 120)), ("black pants", (30, 30, 35)), ("khaki pants", (190, 170, 120)),
    ("grey trousers", (100, 100, 105)), ("brown pants", (110, 75, 45)), ("white pants", (220, 220, 215)),
)  # fmt: skip


@dataclass(frozen=True)
class Look:
    skin: RGB
    hair: RGB
    hair_name: str
    long_hair: bool
    shirt: RGB
    shirt_name: str
    pants: RGB
    pants_name: str
    shoes: RGB
    long_sleeves: bool
    shorts: bool
    gender: str  # "male" or "female": only steers the nouns in the captions


def random_look(rng: random.Random) -> Look:
    gender = rng.choice(("male", "female"))
    shirt_name, shirt = rng.choice(SHIRTS)
    hair_name, hair = rng.choice(HAIRS)
    pants_name, pants = rng.choice(PANTS)
    shorts = rng.random() < 0.25
    return Look(
        skin=rng.choice(SKINS),
        hair=hair,
        hair_name=hair_name,
        long_hair=rng.random() < (0.7 if gender == "female" else 0.08),
        shirt=shirt,
        shirt_name=shirt_name,
        pants=pants,
        pants_name="shorts" if shorts else pants_name,
        shoes=rng.choice(((25, 25, 25), (240, 240, 240), (120, 60, 30), (40, 40, 120))),
        long_sleeves=rng.random() < 0.4,
        shorts=shorts,
        gender=gender,
    )


@dataclass(frozen=True)
class Figure:
    keypoints: tuple[tuple[float, float, int], ...]  # image pixels and COCO visibility, in KEYPOINT_NAMES order
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels, inside the image
    hull: tuple[Point, ...]  # convex outline in image pixels, a coarse segmentation
    points: dict[str, tuple[float, float]]  # every projected joint (toes, neck, head too) in image pixels


def _shade(c: RGB, far: bool) -> RGB:
    return (int(c[0] * 0.8), int(c[1] * 0.8), int(c[2] * 0.8)) if far else c


def _hull(points: list[Point]) -> list[Point]:
    """Monotone-chain convex hull."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    upper: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def inside(poly: list[Point], p: Point) -> bool:
    """Even-odd rule point-in-polygon test."""
    hit = False
    for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1], strict=True):
        if (y1 > p[1]) != (y2 > p[1]) and p[0] < x1 + (p[1] - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def draw_figure(
    draw: ImageDraw.ImageDraw,
    pose: BodyPose,
    yaw: float,
    scale: float,
    origin: Point,
    look: Look,
    size: tuple[int, int],
    ss: int = 1,
    occluded: Callable[[Point], bool] | None = None,
) -> Figure:
    """Paint the body with its pelvis above `origin` (image px, on the ground line), `scale` px tall.

    The canvas behind `draw` is `ss` times the image size; everything returned is in image pixels.
    """
    proj = project(pose, yaw)
    k = scale * ss

    def px(name: str) -> Point:
        x, y, _ = proj[name]
        return (origin[0] * ss + x * k, origin[1] * ss - y * k)

    def depth(*names: str) -> float:
        return sum(proj[n][2] for n in names) / len(names)

    extent: list[Point] = []
    parts: list[tuple[float, int, Callable[[], None]]] = []

    def limb(a: str, b: str, width: float, colour: RGB, cap: float | None = None, order: int = 0) -> None:
        d = depth(a, b)
        pa, pb, w = px(a), px(b), max(2.0, width * k)
        r = (cap if cap is not None else width) * k / 2
        fill = _shade(colour, d > 0.03)
        for x, y in (pa, pb):
            extent.extend(((x - r, y - r), (x + r, y + r), (x - r, y + r), (x + r, y - r)))

        def paint() -> None:
            draw.line((pa, pb), fill=fill, width=round(w))
            for x, y in (pa, pb):
                draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

        parts.append((d, order, paint))

    arm_lower = look.shirt if look.long_sleeves else look.skin
    shin_colour = look.skin if look.shorts else look.pants
    for side in ("left", "right"):
        limb(f"{side}_hip", f"{side}_knee", 0.095, look.pants)
        limb(f"{side}_knee", f"{side}_ankle", 0.072, shin_colour, order=1)
        limb(f"{side}_ankle", f"{side}_toe", 0.05, look.shoes, order=2)
        limb(f"{side}_shoulder", f"{side}_elbow", 0.066, look.shirt, order=3)
        limb(f"{side}_elbow", f"{side}_wrist", 0.054, arm_lower, order=4)
        limb(f"{side}_wrist", f"{side}_wrist", 0.06, look.skin, order=5)

    # The torso is a quad around the hip-to-shoulder axis, never thinner than a chest seen side-on.
    ls, rs, lh, rh = px("left_shoulder"), px("right_shoulder"), px("left_hip"), px("right_hip")
    ms, mh = ((ls[0] + rs[0]) / 2, (ls[1] + rs[1]) / 2), ((lh[0] + rh[0]) / 2, (lh[1] + rh[1]) / 2)
    ax, ay = ms[0] - mh[0], ms[1] - mh[1]
    n = math.hypot(ax, ay) or 1.0
    ux, uy = ax / n, ay / n
    perp = (-uy, ux)
    ws = max(abs(ls[0] - rs[0]) / 2 + 0.035 * k, 0.085 * k)
    wh = max(abs(lh[0] - rh[0]) / 2 + 0.04 * k, 0.075 * k)

    def quad(c_top: Point, w_top: float, c_bot: Point, w_bot: float) -> list[Point]:
        return [
            (c_top[0] + perp[0] * w_top, c_top[1] + perp[1] * w_top),
            (c_top[0] - perp[0] * w_top, c_top[1] - perp[1] * w_top),
            (c_bot[0] - perp[0] * w_bot, c_bot[1] - perp[1] * w_bot),
            (c_bot[0] + perp[0] * w_bot, c_bot[1] + perp[1] * w_bot),
        ]

    top = (ms[0] + ux * 0.02 * k, ms[1] + uy * 0.02 * k)
    waist = (mh[0] + ux * 0.06 * k, mh[1] + uy * 0.06 * k)
    belt = (mh[0] + ux * 0.08 * k, mh[1] + uy * 0.08 * k)
    seat = (mh[0] - ux * 0.045 * k, mh[1] - uy * 0.045 * k)
    shirt_poly = quad(top, ws, waist, wh)
    pants_poly = quad(belt, wh, seat, wh)
    extent.extend(shirt_poly + pants_poly)

    def paint_torso() -> None:
        draw.polygon(pants_poly, fill=look.pants)
        draw.ellipse((mh[0] - wh, mh[1] - wh, mh[0] + wh, mh[1] + wh), fill=look.pants)
        draw.polygon(shirt_poly, fill=look.shirt)
        if look.shirt_name == "striped":
            for t in (0.25, 0.5, 0.75):
                a = (top[0] + (waist[0] - top[0]) * t, top[1] + (waist[1] - top[1]) * t)
                p1 = (a[0] + perp[0] * ws, a[1] + perp[1] * ws)
                p2 = (a[0] - perp[0] * ws, a[1] - perp[1] * ws)
                draw.line((p1, p2), fill=(235, 235, 235), width=max(1, round(0.02 * k)))

    parts.append((-0.02, 6, paint_torso))
    limb("neck", "head", 0.05, look.skin, order=6)

    hc, r = px("head"), HEAD_RADIUS * k
    face_x, away = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
    extent.extend(((hc[0] - r, hc[1] - r), (hc[0] + r, hc[1] + r), (hc[0] - r, hc[1] + r), (hc[0] + r, hc[1] - r)))

    def paint_long_hair() -> None:
        bx = hc[0] - face_x * 0.35 * r
        draw.rounded_rectangle((bx - 0.95 * r, hc[1] - 0.5 * r, bx + 0.95 * r, hc[1] + 2.0 * r), 0.6 * r, look.hair)

    def paint_head() -> None:
        if away > 0.55:
            draw.ellipse((hc[0] - r, hc[1] - r, hc[0] + r, hc[1] + r), fill=look.hair)
            return
        hx, hy = hc[0] - face_x * 0.22 * r, hc[1] - 0.14 * r
        draw.ellipse((hx - 1.02 * r, hy - 1.02 * r, hx + 1.02 * r, hy + 1.02 * r), fill=look.hair)
        fx, fy = hc[0] + face_x * 0.1 * r, hc[1] + 0.07 * r
        draw.ellipse((fx - 0.92 * r, fy - 0.92 * r, fx + 0.92 * r, fy + 0.92 * r), fill=look.skin)
        for eye in ("left_eye", "right_eye"):
            if proj[eye][2] <= proj["head"][2] + 0.15 * HEAD_RADIUS:
                ex, ey = px(eye)
                er = max(0.8, 0.012 * k)
                draw.ellipse((ex - er, ey - er, ex + er, ey + er), fill=(30, 25, 25))

    if look.long_hair:
        parts.append((1.0, -1, paint_long_hair))
    parts.append((-1.0, 9, paint_head))

    for _, _, paint in sorted(parts, key=lambda p: (-p[0], p[1])):
        paint()

    w_img, h_img = size
    xs = [min(max(x / ss, 0.0), w_img) for x, _ in extent]
    ys = [min(max(y / ss, 0.0), h_img) for _, y in extent]
    # Round outwards so the rounded keypoints stay inside the rounded box.
    x0, y0 = math.floor(min(xs) * 100) / 100, math.floor(min(ys) * 100) / 100
    x1, y1 = math.ceil(max(xs) * 100) / 100, math.ceil(max(ys) * 100) / 100
    box = (x0, y0, round(x1 - x0, 2), round(y1 - y0, 2))
    torso_img = [(x / ss, y / ss) for x, y in shirt_poly + pants_poly]
    torso_img = _hull(torso_img)
    keypoints: list[tuple[float, float, int]] = []
    for name in KEYPOINT_NAMES:
        x, y = px(name)
        x, y = x / ss, y / ss
        d = proj[name][2]
        v = 2
        if name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear"):
            if d > proj["head"][2] + 0.15 * HEAD_RADIUS:
                v = 1
        elif d > 0.04 and inside(torso_img, (x, y)):
            v = 1  # behind the torso
        if occluded is not None and occluded((x, y)):
            v = 1
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            keypoints.append((0.0, 0.0, 0))
        else:
            keypoints.append((round(x, 2), round(y, 2), v))
    hull = tuple(
        (round(min(max(x / ss, 0.0), w_img), 2), round(min(max(y / ss, 0.0), h_img), 2)) for x, y in _hull(extent)
    )
    points = {name: (px(name)[0] / ss, px(name)[1] / ss) for name in proj}
    return Figure(tuple(keypoints), box, hull, points)
