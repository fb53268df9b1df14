"""Frozen-backbone features, cached per image and per model key in the project, and head training on them."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from harapp.core.types import LabelledItem
from harapp.ml.config import TrainConfig
from harapp.ml.data import SnapshotDataset, data_loader, decode_side, eval_transform
from harapp.ml.device import autocast
from harapp.ml.models import BuiltModel, LinearHead
from harapp.ml.progress import Phase, Reporter


class EmbeddingStore(Protocol):
    def get_embeddings(self, model_key: str, image_ids: Sequence[int]) -> dict[int, bytes]: ...
    def put_embeddings(self, model_key: str, vectors: dict[int, bytes]) -> None: ...


def model_key(config: TrainConfig, built: BuiltModel) -> str:
    """Everything that changes a feature vector; a random-init backbone depends on the seed too."""
    source = built.weights_source
    if source.startswith("file:"):
        path = Path(source[5:])
        stat = path.stat() if path.exists() else None
        source += f"@{stat.st_size}:{stat.st_mtime_ns}" if stat else ""
    if source == "random":
        source += f":seed{config.seed}"
    pre = built.preprocess
    parts = [
        config.model_kind,
        built.architecture,
        source,
        f"{pre.image_size}:{pre.resize_mode}:{pre.crop_pct}:{pre.interpolation}",
        f"crop={int(config.person_crop)}",
    ]
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]
    return f"{config.model_kind}:{digest}"


@torch.no_grad()
def compute_features(
    built: BuiltModel,
    items: Sequence[LabelledItem],
    device: torch.device,
    batch_size: int,
    person_crop: bool,
    reporter: Reporter,
    epoch_info: tuple[int, int] = (1, 1),
    requested_workers: int | None = None,
) -> torch.Tensor:
    model = built.model.to(device).eval()
    side = decode_side(built.preprocess, person_crop)
    data = SnapshotDataset(items, eval_transform(built.preprocess), person_crop, side)
    loader = data_loader(data, batch_size, device, requested_workers=requested_workers)
    out: list[torch.Tensor] = []
    steps = len(loader)
    for step, (x, _, _) in enumerate(loader, start=1):
        with autocast(device):
            out.append(model.features(x.to(device)).float().cpu())
        reporter.step(epoch=epoch_info[0], epochs=epoch_info[1], step=step, steps=steps, images=len(x))
    dim = built.model.feature_dim
    return torch.cat(out) if out else torch.zeros(0, dim)


def cached_features(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    device: torch.device,
    reporter: Reporter,
    store: EmbeddingStore | None,
) -> tuple[torch.Tensor, int]:
    """Features for items in order, computing only those the store lacks; returns (features, computed count)."""
    key = model_key(config, built)
    ids = [it.image_id for it in items]
    # A person-level snapshot lists an image once per person; its crops cannot share one image-keyed vector.
    image_level = len(set(ids)) == len(ids)
    use_store = store is not None and (image_level or not config.person_crop)
    cached = store.get_embeddings(key, ids) if use_store and store is not None else {}
    missing = [it for it in items if it.image_id not in cached]
    reporter.start_phase("embedding")
    fresh = compute_features(
        built, missing, device, config.batch_size, config.person_crop, reporter, requested_workers=config.loader_workers
    )
    if use_store and store is not None and missing:
        store.put_embeddings(
            key, {it.image_id: v.numpy().astype(np.float32).tobytes() for it, v in zip(missing, fresh, strict=True)}
        )
    by_id = {it.image_id: fresh[i] for i, it in enumerate(missing)}
    for image_id, blob in cached.items():
        by_id[image_id] = torch.from_numpy(np.frombuffer(blob, dtype=np.float32).copy())
    dim = built.model.feature_dim
    feats = torch.stack([by_id[i] for i in ids]) if ids else torch.zeros(0, dim)
    return feats, len(missing)


# Chosen by 5-fold CV on the real COCO photos (EfficientNet-Lite0 features): 1e-4..3e-2 all lie within a few
# points; 1e-2 is the middle of the plateau.
LINEAR_PROBE_L2 = 1e-2
LINEAR_PROBE_MAX_ITER = 200


def train_head(
    head: LinearHead,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    class_weight: torch.Tensor | None,
    reporter: Reporter,
    l2: float = LINEAR_PROBE_L2,
    max_iter: int = LINEAR_PROBE_MAX_ITER,
    phase: Phase = "training",
) -> list[dict[str, Any]]:
    """Fit the head on cached vectors: full-batch L-BFGS on an L2-regularised cross-entropy.

    A convex problem on a few hundred vectors: L-BFGS converges in well under a second, needs no learning rate
    or epoch count, and gives the same answer every time. The penalty pulls towards the initial weights, so a
    CLIP head stays near its zero-shot classifier when there is little data. The val vectors first measure the
    head fitted without them, then join the final fit. ``phase`` names the fit in progress reports: a fine-tune's
    warm-up is not its training, and a progress bar must be able to tell the two apart.
    """
    reporter.start_phase(phase)
    init = {k: v.clone() for k, v in head.state_dict().items()}
    # With val vectors there are two fits; one progress scale over both keeps the bar moving forwards.
    steps = 2 * max_iter if len(val_x) else max_iter
    final, iterations = _fit_lbfgs(head, train_x, train_y, class_weight, reporter, l2, max_iter, (0, steps))
    val_acc = None
    if len(val_x):
        with torch.no_grad():
            val_acc = float((head(val_x).argmax(1) == val_y).float().mean())
        # Nothing to select with val (no epochs, no early stopping), so the final head learns from it too.
        head.load_state_dict(init)
        all_x, all_y = torch.cat([train_x, val_x]), torch.cat([train_y, val_y])
        # The refit starts from the initial weights again: its losses would draw a false jump on the chart.
        final, more = _fit_lbfgs(
            head, all_x, all_y, class_weight, reporter, l2, max_iter, (max_iter, steps), report_loss=False
        )
        iterations += more
    reporter.step(epoch=1, epochs=1, step=steps, steps=steps, images=0, loss=final, val_accuracy=val_acc)
    return [{"epoch": 1, "loss": final, "val_accuracy": val_acc, "iterations": iterations}]


def _fit_lbfgs(
    head: LinearHead,
    x: torch.Tensor,
    y: torch.Tensor,
    class_weight: torch.Tensor | None,
    reporter: Reporter,
    l2: float,
    max_iter: int,
    progress_scale: tuple[int, int],
    report_loss: bool = True,
) -> tuple[float, int]:
    """Returns the objective at the solution and the number of evaluations; progress_scale is (offset, steps)."""
    head.train()
    start = head.linear.weight.detach().clone()
    with torch.no_grad():
        xs = (x - head.shift) / head.scale  # once, not in every one of the hundreds of evaluations
    opt = torch.optim.LBFGS(
        list(head.linear.parameters()), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-5, tolerance_change=1e-8,
    )  # fmt: skip
    calls = [0]
    offset, steps = progress_scale

    def objective() -> torch.Tensor:
        loss = F.cross_entropy(head.linear(xs), y, weight=class_weight)
        return loss + l2 * (head.linear.weight - start).pow(2).sum()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = objective()
        loss.backward()
        calls[0] += 1
        step = offset + min(calls[0], max_iter)
        # Vectors, not images: counting them as images/s would show a meaningless six-figure rate.
        reporter.step(epoch=1, epochs=1, step=step, steps=steps, images=0, loss=loss.item() if report_loss else None)
        return loss

    opt.step(closure)  # returns the loss at the starting point, not at the solution
    head.eval()
    with torch.no_grad():
        final = float(objective())
    return final, calls[0]
