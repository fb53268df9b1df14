"""What a model sees of one photo: its views.

- "whole": the whole photo, squashed to the model's input size;
- "person": the padded square around the photo's main person (see harapp.ml.persons), the whole photo
  when nobody is found;
- "pose": that person's body-pose features (see harapp.ml.pose), zeros when no pose is found.

The image views share one backbone; their feature vectors and the pose vector are concatenated in this
order before the head. On the real COCO photos, whole + person + pose is right more often than the whole
photo alone (bench/README.md, "Person-aware features").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from harapp.ml.errors import ConfigError

View = Literal["whole", "person", "pose"]
VIEW_ORDER: tuple[View, ...] = get_args(View)
IMAGE_VIEWS: tuple[View, ...] = ("whole", "person")
DEFAULT_VIEWS: tuple[View, ...] = ("whole", "person", "pose")
VIEW_LABELS: dict[View, str] = {"whole": "whole photo", "person": "main person", "pose": "body pose"}


def check_views(views: Sequence[str]) -> tuple[View, ...]:
    """The views in canonical order; ConfigError when one is unknown or no image view is left."""
    unknown = [v for v in views if v not in VIEW_ORDER]
    if unknown:
        raise ConfigError(f"Unknown view {unknown[0]!r}; views are {', '.join(VIEW_ORDER)}.")
    ordered = tuple(v for v in VIEW_ORDER if v in views)
    if not any(v in IMAGE_VIEWS for v in ordered):
        raise ConfigError("A model needs at least one image view: 'whole' or 'person'.")
    if tuple(views) != ordered:
        raise ConfigError(f"Give views once each, in the order {', '.join(VIEW_ORDER)}.")
    return ordered


def parse_views(text: str) -> tuple[View, ...]:
    """'whole,person,pose' or 'whole+person' -> a checked tuple of views."""
    parts = [p.strip() for p in text.replace("+", ",").split(",") if p.strip()]
    wanted = set(parts)
    return check_views([v for v in VIEW_ORDER if v in wanted] if wanted <= set(VIEW_ORDER) else parts)


def image_views(views: Sequence[View]) -> tuple[View, ...]:
    return tuple(v for v in views if v in IMAGE_VIEWS)


def needs_person(views: Sequence[View]) -> bool:
    return "person" in views or "pose" in views


def legacy_views(person_crop: bool) -> tuple[View, ...]:
    """The one view a config or checkpoint from before views had."""
    return ("person",) if person_crop else ("whole",)


def describe_views(views: Sequence[View]) -> str:
    return " + ".join(VIEW_LABELS[v] for v in views)
