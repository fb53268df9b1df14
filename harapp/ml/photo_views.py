"""The views of each photo as the decoded-image cache and its batches see them: an image view is a region of the
photo (an entry of the cache), the pose view a vector that travels beside the pixels.

The regions are those the PIL path cuts (harapp.ml.data.view_images, the predictor's): the whole photo, and the
padded square around the item's main person, or the whole photo when nobody was found; each is fitted to the
model's input as its preprocessing fits an image. So training, features and predictions read the pixels the
predictor computes. This module needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from harapp.core.types import LabelledItem
from harapp.ml.decode import Region
from harapp.ml.people import NOBODY, PersonInput
from harapp.ml.persons import square_region
from harapp.ml.pose import POSE_DIM
from harapp.ml.views import View, image_views, needs_person

if TYPE_CHECKING:
    from harapp.ml.models import Preprocess


@dataclass(frozen=True, eq=False)
class PhotoViews:
    """What a model sees of each item (a batches.ViewSet): its image views as regions, and its pose vector."""

    views: tuple[View, ...]
    people: Mapping[LabelledItem, PersonInput]
    """Each item's person (harapp.ml.people.resolve_people); an item without one shows nobody."""
    fit: Literal["squash", "center"] = "squash"
    fraction: float = 1.0
    full: bool = False
    """The whole photo is decoded at full resolution, as the predictor decodes a photo it looks at people in."""

    @classmethod
    def of(
        cls, pre: Preprocess, views: Sequence[View], people: Mapping[LabelledItem, PersonInput] | None = None
    ) -> PhotoViews:
        """The views as the model with this preprocessing reads them (its eval transform's resize and crop)."""
        full = needs_person(views)
        if pre.resize_mode == "squash":
            return cls(tuple(views), people or {}, "squash", 1.0, full)
        return cls(tuple(views), people or {}, "center", pre.crop_pct, full)

    @property
    def names(self) -> tuple[str, ...]:
        return image_views(self.views)

    def only(self, view: View) -> PhotoViews:
        """The same items with one image view (features are computed, and cached, per view)."""
        return PhotoViews((view,), self.people, self.fit, self.fraction, self.full)

    def regions(self, item: LabelledItem) -> tuple[Region, ...]:
        box = self.people.get(item, NOBODY).box
        # A person view without a person shows the whole photo: the same region, so the same cache entry.
        return tuple(
            Region(square_region(box).as_box(), self.fit, self.fraction)
            if view == "person" and box is not None
            else Region(None, self.fit, self.fraction, self.full)
            for view in self.names
        )  # fmt: skip

    def vectors(self, items: Sequence[LabelledItem]) -> dict[str, npt.NDArray[np.float32]]:
        """The pose vector of each item (zeros where no pose was found); {} for a model without the pose view."""
        if "pose" not in self.views:
            return {}
        rows = np.zeros((len(items), POSE_DIM), np.float32)
        for n, item in enumerate(items):
            pose = self.people.get(item, NOBODY).pose
            if pose is not None:
                rows[n] = pose
        return {"pose": rows}
