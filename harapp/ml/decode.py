"""What one entry of the decoded-image cache holds: a region of a photo as `size x size x 3` uint8 pixels.

Every entry gives exactly the pixels the PIL path gives before ToTensor, so the cache changes no model input.
This module needs no torch (the cache's build workers import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from PIL import Image

from harapp.core.types import Box
from harapp.ml.images import load_image
from harapp.ml.persons import FILL

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Region:
    """Which pixels of a photo an entry holds before they become `size x size`.

    box: a rectangle in photo pixels (x, y, width, height) that may reach past the photo's edges (padded with
    FILL, as persons.crop_square does); None is the whole photo. fit "squash" resizes it to a square (the whole
    photo squashed, or a square region resized); fit "center" resizes its short side to size / fraction and
    keeps the centre, which is what the eval transform of a centre-crop preprocessing does.
    """

    box: Box | None = None
    fit: Literal["squash", "center"] = "squash"
    fraction: float = 1.0
    full: bool = False
    """The whole photo is decoded at full resolution (no JPEG draft), as the predictor decodes it for a model
    that also looks at people; a box is always cut from the full-resolution photo."""

    def key(self) -> str:
        where = "whole" if self.box is None else "box:" + ",".join(f"{v:.2f}" for v in self.box)
        return f"{where}{'@full' if self.full and self.box is None else ''}|{self.fit}:{self.fraction:.6g}"


WHOLE = Region()


class Entry(NamedTuple):
    """One (photo, region) to decode."""

    path: str
    region: Region


def _cut(img: Image.Image, box: Box) -> Image.Image:
    """The box (photo pixels) cut out, padded with FILL past the edges, with persons.crop_square's rounding."""
    left, top = round(box[0]), round(box[1])
    width, height = max(2, round(box[2])), max(2, round(box[3]))
    right, bottom = left + width, top + height
    inside = (max(0, left), max(0, top), min(img.width, right), min(img.height, bottom))
    if inside == (left, top, right, bottom):
        return img.crop(inside)
    canvas = Image.new("RGB", (width, height), FILL)
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(img.crop(inside), (inside[0] - left, inside[1] - top))
    return canvas


def _center_fit(img: Image.Image, size: int, fraction: float, resample: Image.Resampling) -> Image.Image:
    """torchvision's Resize(round(size / fraction)) then CenterCrop(size), on a PIL image, pixel for pixel."""
    side = int(round(size / fraction))
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = side, int(side * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), resample)
    if new_w < size or new_h < size:  # cannot happen for fraction <= 1; pad as CenterCrop would
        canvas = Image.new("RGB", (max(size, new_w), max(size, new_h)), (0, 0, 0))
        canvas.paste(img, ((canvas.width - new_w) // 2, (canvas.height - new_h) // 2))
        img, new_w, new_h = canvas, canvas.width, canvas.height
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def decode_entry(entry: Entry, size: int, interpolation: str = "bilinear") -> npt.NDArray[np.uint8]:
    """The entry's pixels as a (size, size, 3) uint8 array; ImageFileError naming the file when it is unreadable.

    Every entry gives exactly the pixels of the PIL path before ToTensor: the whole photo those of
    ml.data.eval_transform (same JPEG draft scale, same PIL resize), a box those of persons.crop_square then that
    resize; so features from the cache equal features from the photo, and the embedding cache stays valid.
    """
    resample = _RESAMPLE.get(interpolation, Image.Resampling.BILINEAR)
    region = entry.region
    if region.box is None and region.full:
        img = load_image(entry.path)
    elif region.box is None:
        # A JPEG decodes at a reduced scale that still covers the output, as the eval transform's decode does.
        side = size / region.fraction if region.fit == "center" else size
        img = load_image(entry.path, min_side=int(round(side)))
    else:
        # A region is cut from the full-resolution photo, as the PIL crops (and the predictor) do: a small
        # person keeps every pixel, and the cache pays the slower decode once.
        img = _cut(load_image(entry.path), region.box)
    if region.fit == "center":
        img = _center_fit(img, size, region.fraction, resample)
    elif img.size != (size, size):
        img = img.resize((size, size), resample)
    return np.array(img, dtype=np.uint8)  # a writable copy: callers may hand it to torch.from_numpy
