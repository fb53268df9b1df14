"""Plain frozen records that cross layer and thread boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Source = Literal["caption", "human", "model"]
"""Who set a label: the COCO captions' votes, a person, or a model."""
SOURCES: tuple[Source, ...] = get_args(Source)


def parse_source(value: object) -> Source | None:
    """The value as a Source, or None when it names none."""
    return next((source for source in SOURCES if source == value), None)


DEFAULT_CLASSES: tuple[str, ...] = ("walking", "running", "sitting", "standing")

Box = tuple[float, float, float, float]
"""A COCO box: x, y, width, height in pixels."""


@dataclass(frozen=True)
class ClassInfo:
    id: int
    name: str
    position: int
    concepts: tuple[str, ...]
    """Caption-lexicon concepts this class covers; a merged class covers several."""


@dataclass(frozen=True)
class Person:
    id: int
    image_id: int
    coco_id: int | None
    box: Box
    keypoints: tuple[float, ...] | None
    area: float


@dataclass(frozen=True)
class Label:
    image_id: int
    person_id: int | None
    class_name: str | None
    source: Source
    votes: dict[str, int] = field(default_factory=dict)
    confidence: float | None = None
    updated_at: str = ""


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: Path
    rel_path: str
    width: int
    height: int
    coco_id: int | None
    captions: tuple[str, ...]
    votes: dict[str, int]
    label: Label | None
    uncertain: bool


@dataclass(frozen=True)
class ImageMatch:
    """An image a user's reference resolved to; `note` says how, when the reference could mean another image."""

    image_id: int
    note: str = ""


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    at: str
    image_id: int
    person_id: int | None
    old_class: str | None
    new_class: str | None
    old_source: str | None
    new_source: str | None
    reason: str
    batch: str | None


@dataclass(frozen=True)
class LabelledItem:
    image_id: int
    path: Path
    class_index: int
    person_boxes: tuple[Box, ...]
    width: int
    height: int
    person_id: int | None = None
    """Set when the label is a person's (then person_boxes holds that person's box only)."""


@dataclass(frozen=True)
class LabelSnapshot:
    """The labels a training run sees, frozen so later edits cannot change a run in flight."""

    class_names: tuple[str, ...]
    items: tuple[LabelledItem, ...]
    revision: int
    project_path: Path | None = None


@dataclass(frozen=True)
class StoredPrediction:
    """A model's prediction for one image, as the project stores it for the gallery."""

    class_name: str
    confidence: float
    """The probability of class_name."""
    probabilities: dict[str, float]
    """Every class's probability."""


@dataclass(frozen=True)
class ModelRecord:
    id: int
    name: str
    kind: str
    mode: str
    path: Path
    created_at: str
    label_revision: int
    metrics: dict[str, Any]
    config: dict[str, Any]
    active: bool


@dataclass(frozen=True)
class ProjectStats:
    """A project's counts, as `harapp stats` and the GUI show them."""

    images: int
    labelled: int
    unlabelled: int
    uncertain: int
    """Images with caption votes but no agreed label."""
    per_class: dict[str, int]
    per_source: dict[str, int]
    persons: int
    person_labels: int
    label_revision: int
    named_by_annotations: int
    """Images the imported annotation files name, imported or not (a deliberate subset names more)."""
    not_found_at_import: int
    """Of those, how many were not on disk when they were imported (so never became part of the project)."""
    missing: int | None = None
    """Imported images whose photo is gone from disk now; None when the files were not checked."""
    missing_examples: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "labelled": self.labelled,
            "unlabelled": self.unlabelled,
            "uncertain": self.uncertain,
            "per_class": dict(self.per_class),
            "per_source": dict(self.per_source),
            "persons": self.persons,
            "person_labels": self.person_labels,
            "label_revision": self.label_revision,
            "named_by_annotations": self.named_by_annotations,
            "not_found_at_import": self.not_found_at_import,
            "missing": self.missing,
            "missing_examples": list(self.missing_examples),
        }


ReviewQueue = Literal["review", "next"]
"""review: labelled images ranked by how likely their label is wrong; next: unlabelled or uncertain images
ranked by how much a label would help."""


@dataclass(frozen=True)
class LabelQuality:
    """One row of guided curation: a labelled image (or person) with the label it probably should have, or an
    unlabelled image with the model's guess."""

    image_id: int
    person_id: int | None
    queue: ReviewQueue
    given_class: str | None
    """The label it had when scored (review); None for the label-next queue."""
    suggested_class: str
    score: float
    """review: the label's quality, 0..1, low means probably wrong; next: the margin between the two most
    likely classes, low means a label would help most."""
    probabilities: dict[str, float]
    likely_wrong: bool
    scorer: str
    """What scored it, e.g. 'efficientnet-lite0 whole+person+pose, 5-fold out-of-fold'."""
    label_revision: int
