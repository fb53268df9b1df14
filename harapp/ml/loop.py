"""The epoch loop for modes that train on images (scratch, fine-tune) and batched evaluation."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from harapp.core.types import LabelledItem
from harapp.ml.batches import DeviceBatches, image_batches
from harapp.ml.config import TrainConfig
from harapp.ml.data import Split
from harapp.ml.device import autocast
from harapp.ml.distributed import gather_rows, mean_over_ranks, wrap_for_training
from harapp.ml.models import BuiltModel
from harapp.ml.people import PersonInput
from harapp.ml.photo_views import PhotoViews
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
) -> DeviceBatches:
    """Batches (x, y, positions) on the device, x holding every view the model reads: from the run's decoded-image
    cache where it has the photos, this rank's share when training across processes."""
    pre = built.preprocess
    return image_batches(
        items, pre, PhotoViews.of(pre, config.views, people), batch_size=config.batch_size, device=device,
        train=train, augment=config.augment, seed=seed, requested_workers=config.loader_workers,
        use_cache=config.decoded_cache,
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
    """(targets, raw logits on the CPU) for items, in order (gathered from every rank's share). ``report``: send
    step progress (the final evaluation is a phase of its own; the validation inside each epoch is part of the
    fit and stays silent)."""
    model = built.model.eval()
    n_classes = built.model.head.linear.out_features
    rows: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    loader = make_loader(items, people, built, config, train=False, seed=config.seed, device=device)
    for step, (x, y, pos) in enumerate(loader, start=1):
        reporter.check_cancel()
        with autocast(device):
            rows.append(model(**x).float().cpu())
        targets.append(y.cpu())
        positions.append(pos)
        if report:
            reporter.step(epoch=1, epochs=1, step=step, steps=len(loader), images=len(y))
    logits = torch.cat(rows) if rows else torch.zeros(0, n_classes)
    labels = torch.cat(targets).float()[:, None] if targets else torch.zeros(0, 1)
    where = torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long)
    # One gather puts the logits and the targets (one more column) in item order.
    ordered = gather_rows(where, torch.cat([logits, labels], 1), len(items))
    return ordered[:, -1].long().tolist(), ordered[:, :-1]


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
    train_model = wrap_for_training(model, device)  # DDP across ranks; after the optimiser set what trains
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
        for step, (x, y, _) in enumerate(loader, start=1):
            reporter.check_cancel()
            with autocast(device):
                logits = train_model(**x)
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
        train_loss = mean_over_ranks(total, seen)
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
