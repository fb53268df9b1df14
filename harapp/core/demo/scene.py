"""Backgrounds, seats and occluders for the demo pictures.

Scenes are chosen independently of the activity, so a classifier trained on the demo has to look at
the person rather than learn "grass means running".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from harapp.core.demo.pose import BodyPose, project

SCENES: tuple[str, ...] = ("street", "park", "wall", "beach", "indoor")
RGB = tuple[int, int, int]
Point = tuple[float, float]


def _jitter(c: RGB, rng: random.Random, amount: int = 18) -> RGB:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in c)  # type: ignore[return-value]


def _gradient(h: int, w: int, top: RGB, bottom: RGB) -> npt.NDArray[np.float32]:
    t = np.linspace(0.0, 1.0, max(h, 1), dtype=np.float32)[:, None, None]
    col = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(col, (h, w, 3)).astype(np.float32)


def paint_background(scene: str, size: tuple[int, int], horizon: int, ss: int, rng: random.Random,
                     nrng: np.random.Generator) -> Image.Image:  # fmt: skip
    """A `ss`-times supersampled canvas: textured ground below `horizon` (image px), scenery above."""
    w, h = size
    arr = np.empty((h, w, 3), np.float32)
    if scene in ("wall", "indoor"):
        upper = (178, 80, 60) if scene == "wall" else rng.choice(((225, 215, 190), (200, 210, 220), (215, 200, 210)))
        arr[:horizon] = _gradient(horizon, w, _jitter(upper, rng), _jitter(upper, rng))
    else:
        sky = rng.choice((((110, 160, 225), (190, 215, 240)), ((160, 170, 180), (215, 215, 215))))
        arr[:horizon] = _gradient(horizon, w, sky[0], sky[1])
    ground = {
        "street": (140, 140, 138), "park": (80, 150, 60), "wall": (150, 145, 140),
        "beach": (225, 205, 150), "indoor": rng.choice(((160, 115, 70), (190, 160, 120), (120, 120, 125))),
    }[scene]  # fmt: skip
    g = _jitter(ground, rng)
    arr[horizon:] = _gradient(h - horizon, w, tuple(int(v * 0.85) for v in g), g)  # type: ignore[arg-type]
    # Coarse blotches plus fine grain: a flat colour would be too easy a cue to separate from the person.
    coarse = nrng.normal(0.0, 1.0, (h // 8 + 2, w // 8 + 2)).astype(np.float32)
    coarse *= np.where(np.arange(h // 8 + 2)[:, None] * 8 < horizon, 4.0, 12.0).astype(np.float32)
    coarse_img = Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BILINEAR)
    arr += np.asarray(coarse_img, np.float32)[:, :, None]
    grain = 12.0 if scene in ("park", "beach") else 6.0
    arr[horizon:] += nrng.normal(0.0, grain, (h - horizon, w, 1)).astype(np.float32)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").resize((w * ss, h * ss))
    _scenery(ImageDraw.Draw(img), scene, w * ss, h * ss, horizon * ss, ss, rng)
    return img


def _scenery(d: ImageDraw.ImageDraw, scene: str, w: int, h: int, hz: int, ss: int, rng: random.Random) -> None:
    if scene == "street":
        x = rng.randint(-40, 0) * ss
        while x < w:
            bw, bh = rng.randint(40, 90) * ss, rng.randint(hz // 3, hz)
            colour = _jitter(rng.choice(((170, 150, 130), (120, 110, 110), (200, 190, 170), (140, 100, 80))), rng)
            d.rectangle((x, hz - bh, x + bw, hz), fill=colour)
            win = tuple(int(v * 0.55) for v in colour)
            for wy in range(hz - bh + 6 * ss, hz - 10 * ss, 14 * ss):
                for wx in range(x + 6 * ss, x + bw - 8 * ss, 14 * ss):
                    d.rectangle((wx, wy, wx + 6 * ss, wy + 7 * ss), fill=win)
            x += bw + rng.randint(0, 10) * ss
        for y in range(hz + 6 * ss, h, 18 * ss):  # paving joints
            d.line((0, y, w, y), fill=(115, 115, 115), width=ss)
    elif scene == "park":
        for _ in range(rng.randint(2, 6)):
            tx, th = rng.randint(0, w), rng.randint(hz // 3, int(hz * 0.9))
            d.rectangle((tx - 3 * ss, hz - th // 2, tx + 3 * ss, hz + 2 * ss), fill=(90, 60, 35))
            leaf = _jitter((40, 110, 45), rng, 25)
            d.ellipse((tx - th // 3, hz - th, tx + th // 3, hz - th // 3), fill=leaf)
    elif scene == "wall":
        for row, y in enumerate(range(0, hz, 8 * ss)):
            d.line((0, y, w, y), fill=(210, 200, 190), width=ss)
            off = (row % 2) * 9 * ss
            for x in range(off, w, 18 * ss):
                d.line((x, y, x, min(y + 8 * ss, hz)), fill=(210, 200, 190), width=ss)
    elif scene == "beach":
        sea = rng.randint(8, 20) * ss
        d.rectangle((0, hz - sea, w, hz), fill=_jitter((50, 110, 170), rng))
        d.line((0, hz, w, hz), fill=(240, 240, 240), width=2 * ss)
    else:  # indoor: a window or a picture on the wall, skirting board at the floor
        x0 = rng.randint(0, w // 2)
        d.rectangle((x0, hz // 4, x0 + w // 4, hz * 3 // 4), fill=(90, 80, 70))
        d.rectangle((x0 + 3 * ss, hz // 4 + 3 * ss, x0 + w // 4 - 3 * ss, hz * 3 // 4 - 3 * ss),
                    fill=_jitter((170, 200, 230), rng, 30))  # fmt: skip
        d.rectangle((0, hz - 4 * ss, w, hz), fill=(240, 240, 235))


def draw_seat(d: ImageDraw.ImageDraw, pose: BodyPose, yaw: float, scale: float, origin: Point, ss: int,
              rng: random.Random) -> None:  # fmt: skip
    """A chair, a bench or a blanket under a sitting body; drawn before the body."""
    if pose.seat == "none":
        return
    proj = project(pose, yaw)
    k = scale * ss

    def px(name: str) -> Point:
        return origin[0] * ss + proj[name][0] * k, origin[1] * ss - proj[name][1] * k

    hip = ((px("left_hip")[0] + px("right_hip")[0]) / 2, (px("left_hip")[1] + px("right_hip")[1]) / 2)
    knee = ((px("left_knee")[0] + px("right_knee")[0]) / 2, (px("left_knee")[1] + px("right_knee")[1]) / 2)
    ground_y = origin[1] * ss
    if pose.seat == "ground":
        if rng.random() < 0.5:
            colour = _jitter(rng.choice(((200, 60, 60), (60, 90, 180), (220, 200, 90))), rng)
            d.ellipse((hip[0] - 0.35 * k, ground_y - 0.05 * k, knee[0] + 0.35 * k, ground_y + 0.06 * k), fill=colour)
        return
    facing = 1.0 if knee[0] >= hip[0] else -1.0
    seat_y = hip[1] + 0.05 * k
    back_x = hip[0] - facing * 0.1 * k
    front_x = hip[0] + facing * max(abs(knee[0] - hip[0]) - 0.02 * k, 0.12 * k)
    wood = _jitter(rng.choice(((120, 80, 45), (90, 60, 35), (70, 70, 75), (150, 110, 70))), rng, 12)
    thick, leg_w = 0.04 * k, max(ss, round(0.03 * k))
    if pose.seat == "bench":
        back_x -= facing * rng.uniform(0.1, 0.4) * k
        front_x += facing * rng.uniform(0.1, 0.4) * k
    lo, hi = min(back_x, front_x), max(back_x, front_x)
    for x in (lo + 0.02 * k, hi - 0.02 * k):
        d.line((x, seat_y, x, ground_y), fill=wood, width=leg_w)
    d.rectangle((lo, seat_y, hi, seat_y + thick), fill=wood)
    if pose.seat == "chair":
        d.line((back_x, seat_y, back_x, seat_y - 0.34 * k), fill=wood, width=leg_w)
        tx = back_x - facing * 0.02 * k
        d.line((tx, seat_y - 0.3 * k, back_x + facing * 0.02 * k, seat_y - 0.34 * k), fill=wood, width=leg_w * 2)
    elif rng.random() < 0.6:  # a bench back: two rails behind the sitter
        for rail in (0.14, 0.26):
            d.rectangle((lo, seat_y - (rail + 0.03) * k, hi, seat_y - rail * k), fill=wood)
        d.line((lo + 0.05 * k, seat_y, lo + 0.05 * k, seat_y - 0.29 * k), fill=wood, width=leg_w)
        d.line((hi - 0.05 * k, seat_y, hi - 0.05 * k, seat_y - 0.29 * k), fill=wood, width=leg_w)


@dataclass(frozen=True)
class Occluder:
    """Something in front of the main person: a bush, a bin or a post."""

    kind: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    colour: RGB

    def covers(self, p: Point) -> bool:
        x0, y0, x1, y1 = self.box
        if self.kind == "bush":
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            return ((p[0] - cx) / rx) ** 2 + ((p[1] - cy) / ry) ** 2 <= 1.0
        return x0 <= p[0] <= x1 and y0 <= p[1] <= y1

    def paint(self, d: ImageDraw.ImageDraw, ss: int) -> None:
        x0, y0, x1, y1 = (v * ss for v in self.box)
        if self.kind == "bush":
            d.ellipse((x0, y0, x1, y1), fill=self.colour)
            dark = tuple(int(v * 0.75) for v in self.colour)
            d.ellipse((x0 + (x1 - x0) * 0.15, y0 + (y1 - y0) * 0.35, x1 - (x1 - x0) * 0.4, y1), fill=dark)
        else:
            d.rectangle((x0, y0, x1, y1), fill=self.colour)
            if self.kind == "bin":
                d.rectangle((x0 - ss * 2, y0, x1 + ss * 2, y0 + (y1 - y0) * 0.12), fill=(60, 60, 60))


def random_occluder(rng: random.Random, foot: Point, scale: float, size: tuple[int, int]) -> Occluder:
    """Low enough to hide at most the shins, or a post thin enough to hide a slice: the pose stays legible."""
    kind = rng.choice(("bush", "bin", "post"))
    x = foot[0] + rng.uniform(-0.3, 0.3) * scale
    ground = min(foot[1] + rng.uniform(0, 0.05) * scale, size[1])
    if kind == "post":
        half = rng.uniform(0.02, 0.035) * scale
        return Occluder(kind, (x - half, ground - scale * 1.3, x + half, ground), _jitter((70, 70, 75), rng))
    height = rng.uniform(0.12, 0.3) * scale
    half = height * rng.uniform(0.7, 1.3) if kind == "bush" else height * 0.35
    colour = _jitter((45, 120, 50), rng, 25) if kind == "bush" else _jitter((60, 110, 70), rng, 40)
    return Occluder(kind, (x - half, ground - height, x + half, ground + (height * 0.15 if kind == "bush" else 0)),
                    colour)  # fmt: skip
