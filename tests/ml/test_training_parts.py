"""The trainer's parts, each on its own: split, balanced loss, augmentations, optimiser and schedule, early stop."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from harapp.core.types import LabelledItem, LabelSnapshot
from harapp.ml import loop
from harapp.ml.batches import DeviceBatches, image_batches
from harapp.ml.config import TrainConfig
from harapp.ml.data import class_weights, stratified_split
from harapp.ml.models import Preprocess, build_model
from harapp.ml.photo_views import PhotoViews
from harapp.ml.trainer import _loss, train
from tests.ml.conftest import draw_shapes

CPU = torch.device("cpu")


def _items(per_class: dict[int, int]) -> list[LabelledItem]:
    items, next_id = [], 1
    for class_index, count in per_class.items():
        for _ in range(count):
            items.append(LabelledItem(next_id, Path(f"{next_id}.jpg"), class_index, (), 64, 48))
            next_id += 1
    return items


def test_stratified_split_keeps_every_class_in_each_part_in_proportion() -> None:
    items = _items({0: 40, 1: 20, 2: 10, 3: 30})
    split = stratified_split(items, val_fraction=0.2, test_fraction=0.1, seed=3)
    parts = (split.train, split.val, split.test)
    ids = [it.image_id for part in parts for it in part]
    assert sorted(ids) == [it.image_id for it in items]  # a partition: nothing lost, nothing twice
    val, test = Counter(it.class_index for it in split.val), Counter(it.class_index for it in split.test)
    assert val == {0: 8, 1: 4, 2: 2, 3: 6} and test == {0: 4, 1: 2, 2: 1, 3: 3}
    again = stratified_split(items, 0.2, 0.1, seed=3)
    assert again == split  # the seed fixes the split
    assert stratified_split(items, 0.2, 0.1, seed=4).test != split.test


def test_balanced_loss_weighs_rare_classes_up() -> None:
    items = _items({0: 30, 1: 10, 3: 20})  # class 2 absent from the training part
    weights = class_weights(items, 4)
    assert weights[2] == 0
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[3] == pytest.approx(1.5 * weights[0])
    # Each present class carries the same total weight, and together they weigh as much as the images do.
    totals = [float(weights[c]) * n for c, n in ((0, 30), (1, 10), (3, 20))]
    assert totals == pytest.approx([20.0, 20.0, 20.0])
    split = stratified_split(items, 0.0, 0.0, seed=0)
    balanced = _loss(TrainConfig(balanced_loss=True), split, 4)
    plain = _loss(TrainConfig(balanced_loss=False), split, 4)
    assert torch.equal(balanced.weight, weights) and plain.weight is None


def test_augmentation_varies_training_images_and_never_evaluation_ones(tmp_path: Path) -> None:
    pre = Preprocess(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    items = draw_shapes(tmp_path / "imgs", 4)

    def epoch(loader: DeviceBatches) -> dict[int, torch.Tensor]:
        """Each item's image in one pass, by its position (training batches come shuffled)."""
        return {int(p): x["whole"][i] for x, _, positions in loader for i, p in enumerate(positions)}

    def batches(train: bool, augment: bool) -> DeviceBatches:
        views = PhotoViews.of(pre, ("whole",))
        return image_batches(items, pre, views, batch_size=2, device=CPU, train=train, augment=augment, seed=0)

    augmented = batches(train=True, augment=True)
    first, second = epoch(augmented), epoch(augmented)
    assert all(first[i].shape == (3, 32, 32) for i in range(4))
    assert all(not torch.equal(first[i], second[i]) for i in range(4))  # a new crop and flip every epoch
    evaluation = epoch(batches(train=False, augment=True))
    plain = epoch(batches(train=True, augment=False))
    assert all(torch.equal(evaluation[i], plain[i]) and torch.equal(evaluation[i], epoch(batches(False, False))[i])
               for i in range(4))  # fmt: skip


def test_fine_tuning_gives_the_backbone_a_lower_learning_rate() -> None:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", lr=1e-3, image_size=32)
    built = build_model(config, ("a", "b"))
    assert {g["lr"] for g in loop.param_groups(built, config)} == {1e-3}  # from scratch: one rate
    tuned = TrainConfig(model_kind="resnet18", mode="fine-tune", lr=1e-3, backbone_lr_scale=0.1, pretrained=False)
    groups = loop.param_groups(build_model(tuned, ("a", "b")), tuned)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]  # head, then backbone


def test_adamw_with_a_cosine_schedule_down_to_zero(
    shapes_snapshot: LabelSnapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.optim.lr_scheduler.CosineAnnealingLR] = []
    rates: list[float] = []

    class RecordingCosine(torch.optim.lr_scheduler.CosineAnnealingLR):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            seen.append(self)

        def step(self, *args: object, **kwargs: object) -> None:
            super().step(*args, **kwargs)
            rates.append(self.get_last_lr()[0])

    monkeypatch.setattr(torch.optim.lr_scheduler, "CosineAnnealingLR", RecordingCosine)
    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", epochs=3, batch_size=8, image_size=32, device="cpu", lr=1e-3,
        early_stopping_patience=0,
    )  # fmt: skip
    train(config, shapes_snapshot, tmp_path / "m.pt")
    assert len(seen) == 1 and isinstance(seen[0].optimizer, torch.optim.AdamW)
    # The first entry is the scheduler's own initial step, at the full rate.
    assert rates == sorted(rates, reverse=True) and rates[0] == pytest.approx(1e-3) and rates[1] < 1e-3
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_early_stopping_ends_a_run_whose_validation_stalls(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    # A learning rate too small to change anything: validation accuracy cannot improve after the first epoch.
    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", epochs=30, batch_size=8, image_size=32, device="cpu",
        lr=1e-12, early_stopping_patience=2, augment=False,
    )  # fmt: skip
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    epochs = [h for h in result.history if "epoch" in h and "loss" in h]
    assert len(epochs) == 3  # the first epoch sets the best, two stale ones end it
