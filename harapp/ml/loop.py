"""The epoch loop for modes that train on images (scratch, fine-tune) and batched evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from harapp.core.types import LabelledItem
from harapp.ml.config import TrainConfig
from harapp.ml.data import (
    SnapshotDataset,
    Split,
    data_loader,
    decode_side,
    eval_transform,
    to_device,
    train_transform,
)
from harapp.ml.device import autocast
from harapp.ml.models import BuiltModel
from harapp.ml.people import NOBODY, PersonInput
from harapp.ml.progress import Reporter

CPU = torch.device("cpu")


People = Mapping[LabelledItem, PersonInput]
"""The person input of each item of a run (harapp.ml.people.resolve_people)."""


def make_loader(
    items: Sequence[LabelledItem],
    people: People,
    built: BuiltModel,
    config: TrainConfig,
    train: bool,
    seed: int,
    device: torch.device = CPU,
) -> DataLoader[tuple[dict[str, torch.Tensor], int, int]]:
    transform = train_transform(built.preprocess, config.augment) if train else eval_transform(built.preprocess)
    # Training crops zoom in by up to 1/0.6, so decode a little larger than the eval transform needs.
    side = decode_side(built.preprocess, config.views)
    side = int(side * 1.3) if side and train and config.augment else side
    data = SnapshotDataset(items, transform, config.views, [people.get(it, NOBODY) for it in items], side)
    return data_loader(
        data, config.batch_size, device, shuffle=train, seed=seed, requested_workers=config.loader_workers,
        keep_workers=train,  # one start per fit, not per epoch
    )  # fmt: skip


@torch.no_grad()
def predict_logits(
    built: BuiltModel,
    items: Sequence[LabelledItem],
    people: People,
    config: TrainConfig,
    device: torch.device,
    reporter: Reporter,
    report: bool = False,
) -> tuple[list[int], torch.Tensor]:
    """(targets, raw logits on the CPU) for items, in order. ``report``: send step progress (the final
    evaluation is a phase of its own; the validation inside each epoch is part of the fit and stays silent)."""
    model = built.model.eval()
    targets: list[int] = []
    out: list[torch.Tensor] = []
    loader = make_loader(items, people, built, config, train=False, seed=config.seed, device=device)
    for step, (sample, y, _) in enumerate(loader, start=1):
        reporter.check_cancel()
        with autocast(device):
            out.append(model(**to_device(sample, device)).float().cpu())
        targets += y.tolist()
        if report:
            reporter.step(epoch=1, epochs=1, step=step, steps=len(loader), images=len(y))
    n_classes = built.model.head.linear.out_features
    return targets, torch.cat(out) if out else torch.zeros(0, n_classes)


def param_groups(built: BuiltModel, config: TrainConfig) -> list[dict[str, Any]]:
    model = built.model
    if config.mode == "fine-tune":
        model.set_trainable_backbone(config.finetune_last_blocks, train_backbone=True)
        backbone_lr = config.lr * config.backbone_lr_scale
    else:
        model.set_trainable_backbone(None, train_backbone=True)
        backbone_lr = config.lr
    groups = [{"params": list(model.head.parameters()), "lr": config.lr}]
    trainable = [p for p in model.backbone.parameters() if p.requires_grad]
    if trainable:
        groups.append({"params": trainable, "lr": backbone_lr})
    return groups


def _freeze_norm_statistics(model: nn.Module, all_norms: bool) -> None:
    """Keep pretrained batch-norm statistics: in frozen blocks always, and in every block when fine-tuning.

    On a few hundred photos, batch statistics drift away from the ones the features (and the probe head) were
    fitted with: a forward pass in train mode alone dropped val accuracy from 0.63 to 0.55 on the COCO photos.
    The norms' scale and shift still train.
    """
    for module in model.modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        params = list(module.parameters(recurse=False))
        if all_norms or (params and not any(p.requires_grad for p in params)):
            module.eval()


def fit(
    built: BuiltModel,
    split: Split,
    people: People,
    config: TrainConfig,
    device: torch.device,
    loss_fn: nn.Module,
    reporter: Reporter,
    on_improved: Callable[[int, float], None] | None = None,
) -> list[dict[str, Any]]:
    """Train on split.train, keep the weights of the best validation epoch, stop early when it stalls."""
    model = built.model.to(device)
    loss_fn = loss_fn.to(device)
    opt = torch.optim.AdamW(param_groups(built, config), weight_decay=config.weight_decay)
    loader = make_loader(split.train, people, built, config, train=True, seed=config.seed, device=device)
    steps = max(1, len(loader))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * steps)
    history: list[dict[str, Any]] = []
    best, best_state, stale = -math.inf, None, 0
    val_acc: float | None = None
    reporter.start_phase("training")
    for epoch in range(1, config.epochs + 1):
        model.train()
        _freeze_norm_statistics(model, all_norms=config.mode == "fine-tune")
        total, seen = 0.0, 0
        for step, (sample, y, _) in enumerate(loader, start=1):
            reporter.check_cancel()
            y = y.to(device, non_blocking=True)
            with autocast(device):
                logits = model(**to_device(sample, device))
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(y)
            seen += len(y)
            reporter.step(
                epoch=epoch, epochs=config.epochs, step=step, steps=steps, images=len(y),
                loss=loss.item(), val_accuracy=val_acc,
            )  # fmt: skip
        train_loss = total / max(seen, 1)
        if split.val:
            targets, logits = predict_logits(built, split.val, people, config, device, reporter)
            preds = logits.argmax(1).tolist()
            val_acc = sum(int(t == p) for t, p in zip(targets, preds, strict=True)) / len(targets)
            score = val_acc
        else:
            val_acc, score = None, -train_loss
        history.append({"epoch": epoch, "loss": train_loss, "val_accuracy": val_acc})
        reporter.step(
            epoch=epoch, epochs=config.epochs, step=steps, steps=steps, images=0,
            loss=train_loss, val_accuracy=val_acc, force=True,
        )  # fmt: skip
        if score > best:
            best, stale = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if on_improved:
                on_improved(epoch, score)
        else:
            stale += 1
            if config.early_stopping_patience and stale >= config.early_stopping_patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history
