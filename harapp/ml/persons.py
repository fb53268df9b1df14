"""Which person a photo is about, and the square region around them that the person view sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from harapp.core.types import Box

PERSON_MARGIN = 0.15
"""Context kept around a person box on every side, as a share of its longer side: the chair under a sitting
person and the ground under the feet tell the activity as much as the body does."""

FILL = (124, 116, 104)
"""The ImageNet mean colour: a square region that reaches past the photo's edge is padded with it, which a
network reads as 'nothing here' rather than as a black wall."""


@dataclass(frozen=True)
class SquareRegion:
    """A square in photo pixels; it may reach past the photo's edges."""

    left: float
    top: float
    side: float

    def as_box(self) -> Box:
        return (self.left, self.top, self.side, self.side)


def usable_boxes(boxes: Sequence[Box], width: int, height: int) -> list[Box]:
    """Boxes with a real size that overlap the photo; NaN, negative or outside boxes are dropped."""
    usable = []
    for x, y, w, h in boxes:
        if not all(v == v and abs(v) != float("inf") for v in (x, y, w, h)):
            continue
        if w <= 1 or h <= 1 or x >= width or y >= height or x + w <= 0 or y + h <= 0:
            continue
        usable.append((x, y, w, h))
    return usable


def main_person(boxes: Sequence[Box], width: int, height: int) -> Box | None:
    """The person a photo's label is about: the largest box (by its area inside the photo), or None.

    Captions describe the most prominent person, and the largest box is the best cheap guess at who that is.
    """
    usable = usable_boxes(boxes, width, height)
    if not usable:
        return None

    def visible_area(b: Box) -> float:
        x, y, w, h = b
        return max(0.0, min(x + w, width) - max(x, 0.0)) * max(0.0, min(y + h, height) - max(y, 0.0))

    return max(usable, key=visible_area)


def square_region(box: Box, margin: float = PERSON_MARGIN) -> SquareRegion:
    """The square centred on a box whose side is the box's longer side plus the margin on both ends."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    return SquareRegion(x + w / 2 - side / 2, y + h / 2 - side / 2, side)


def crop_square(img: Image.Image, region: SquareRegion, size: int | None = None) -> Image.Image:
    """The region of the photo as a square image (padded with FILL past the edges), optionally resized."""
    side = max(2, round(region.side))
    left, top = round(region.left), round(region.top)
    inside = (max(0, left), max(0, top), min(img.width, left + side), min(img.height, top + side))
    has_inside = inside[2] > inside[0] and inside[3] > inside[1]
    whole_inside = inside == (left, top, left + side, top + side)
    if size is not None and not whole_inside:
        # Scale the part inside the photo and pad at the output size: a padded canvas at photo scale can be
        # many times the photo for a big person near an edge.
        scale = size / side
        square = Image.new("RGB", (size, size), FILL)
        if has_inside:
            width = max(1, round((inside[2] - inside[0]) * scale))
            height = max(1, round((inside[3] - inside[1]) * scale))
            part = img.resize((width, height), Image.Resampling.BILINEAR, box=inside)
            square.paste(part, (round((inside[0] - left) * scale), round((inside[1] - top) * scale)))
        return square
    if whole_inside:
        square = img.crop(inside)
    else:
        square = Image.new("RGB", (side, side), FILL)
        if has_inside:
            square.paste(img.crop(inside), (inside[0] - left, inside[1] - top))
    if size is not None and square.size != (size, size):
        square = square.resize((size, size), Image.Resampling.BILINEAR)
    return square
