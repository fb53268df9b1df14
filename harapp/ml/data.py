"""Seeded stratified splits of a frozen label snapshot, class weights, and the PIL image path of one photo (the
predictor's: decode, cut each view, eval transform), which the decoded-image cache reproduces pixel for pixel."""

from __future__ import annotations

import gc
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from harapp.core.types import LabelledItem
from harapp.ml.models import Preprocess
from harapp.ml.people import PersonInput
from harapp.ml.persons import crop_square, square_region
from harapp.ml.views import View, needs_person

if TYPE_CHECKING:
    from torchvision.transforms import Compose


@dataclass(frozen=True)
class Split:
    train: tuple[LabelledItem, ...]
    val: tuple[LabelledItem, ...]
    test: tuple[LabelledItem, ...]


def _by_class(items: Sequence[LabelledItem], seed: int) -> dict[int, list[LabelledItem]]:
    groups: dict[int, list[LabelledItem]] = {}
    for item in sorted(items, key=lambda it: it.image_id):
        groups.setdefault(item.class_index, []).append(item)
    rng = random.Random(seed)
    for key in sorted(groups):
        rng.shuffle(groups[key])
    return groups


def _take_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """How many of a class go to val and test: rounded shares, but the training part never empties."""
    n_test = round(n * test_fraction)
    n_val = round(n * val_fraction)
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_val = max(n_val, 1 if val_fraction > 0 else 0)
    while n_test + n_val >= n and (n_test or n_val):
        if n_val >= n_test and n_val:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def stratified_split(items: Sequence[LabelledItem], val_fraction: float, test_fraction: float, seed: int) -> Split:
    train: list[LabelledItem] = []
    val: list[LabelledItem] = []
    test: list[LabelledItem] = []
    for members in _by_class(items, seed).values():
        n_val, n_test = _take_counts(len(members), val_fraction, test_fraction)
        test += members[:n_test]
        val += members[n_test : n_test + n_val]
        train += members[n_test + n_val :]
    key = lambda it: it.image_id  # noqa: E731
    return Split(tuple(sorted(train, key=key)), tuple(sorted(val, key=key)), tuple(sorted(test, key=key)))


def kfold_splits(items: Sequence[LabelledItem], folds: int, val_fraction: float, seed: int) -> list[Split]:
    """Stratified k-fold: each item is in exactly one test fold; val is carved from the rest."""
    assignment: dict[int, int] = {}
    offset = 0
    for members in _by_class(items, seed).values():
        for j, item in enumerate(members):
            assignment[item.image_id] = (j + offset) % folds
        offset += len(members)  # keeps fold sizes even when many classes are small
    splits = []
    for fold in range(folds):
        test = tuple(it for it in items if assignment[it.image_id] == fold)
        rest = [it for it in items if assignment[it.image_id] != fold]
        inner = stratified_split(rest, val_fraction, 0.0, seed + fold + 1)
        splits.append(Split(inner.train, inner.val, tuple(sorted(test, key=lambda it: it.image_id))))
    return splits


def eval_transform(pre: Preprocess) -> Compose:
    # Imported here: torchvision brings sympy and triton along (160 MB of memory, a second of start-up), and
    # runs that find every vector cached, such as a label review, never transform a photo.
    from torchvision import transforms as T

    interp = {
        "bicubic": T.InterpolationMode.BICUBIC,
        "nearest": T.InterpolationMode.NEAREST,
    }.get(pre.interpolation, T.InterpolationMode.BILINEAR)
    size = pre.image_size
    if pre.resize_mode == "squash":
        steps: list = [T.Resize((size, size), interpolation=interp)]
    else:
        steps = [T.Resize(int(round(size / pre.crop_pct)), interpolation=interp), T.CenterCrop(size)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(pre.mean, pre.std)])


def decode_side(pre: Preprocess, views: Sequence[View]) -> int | None:
    """The short side a photo needs before its transforms; None when a person's square (the person view, or
    the pose read from the person) needs every pixel."""
    if needs_person(views):
        return None
    return pre.image_size if pre.resize_mode == "squash" else int(round(pre.image_size / pre.crop_pct))


def view_images(img: Image.Image, views: Sequence[View], person: PersonInput) -> dict[str, Image.Image]:
    """The image of each image view of a photo: the whole photo, and the square around its person."""
    out: dict[str, Image.Image] = {}
    if "whole" in views:
        out["whole"] = img
    if "person" in views:
        out["person"] = crop_square(img, square_region(person.box)) if person.box is not None else img
    return out


def class_weights(items: Sequence[LabelledItem], num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, total / (present classes × count): every present class then carries the same
    total weight, and all of them together as much as the images (absent classes get 0)."""
    counts = torch.zeros(num_classes)
    for item in items:
        counts[item.class_index] += 1
    present = counts > 0
    weights = torch.zeros(num_classes)
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights


def init_worker(_worker_id: int) -> None:
    """Start of a DataLoader worker process."""
    gc.enable()  # a worker forked from the GUI inherits its switched-off collector (see harapp.gui.gc_guard)
    # Each worker gets its own torch seed from the loader's generator; numpy and random follow it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
