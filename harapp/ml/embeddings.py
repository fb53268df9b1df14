"""Frozen-backbone features of every view of a photo, cached in the project per image (and person box).

A linear probe, CLIP zero-shot, label-quality scores and project-wide predictions of such models all work
from these vectors, so after the first run a retrain or a re-scoring decodes no photo at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from harapp.core.types import LabelledItem
from harapp.ml.batches import image_batches
from harapp.ml.config import TrainConfig
from harapp.ml.device import autocast
from harapp.ml.distributed import from_leader, gather_rows
from harapp.ml.models import BuiltModel
from harapp.ml.people import NOBODY, PersonInput, VectorStore
from harapp.ml.photo_views import PhotoViews
from harapp.ml.progress import Reporter
from harapp.ml.vector_cache import BoxRows
from harapp.ml.views import View, needs_person

EmbeddingStore = VectorStore
"""The project's vector cache, as the trainer and the feature code see it."""


def model_key(config: TrainConfig, built: BuiltModel, view: View = "whole") -> str:
    """Everything that changes a feature vector of one image view; a random-init backbone depends on the
    seed too, and the whole view on whether the photo was decoded in full (a model with a person view
    decodes every pixel once for both views, so its whole view must be computed that way too)."""
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
        f"view={view}",
    ]
    if view == "whole" and needs_person(config.views):
        parts.append("decode=full")
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]
    return f"{config.model_kind}:{digest}"


@torch.no_grad()
def compute_view_features(
    built: BuiltModel,
    items: Sequence[LabelledItem],
    people: Sequence[PersonInput],
    view: View,
    device: torch.device,
    batch_size: int,
    reporter: Reporter,
    requested_workers: int | None = None,
    use_cache: bool = True,
    model_views: Sequence[View] | None = None,
) -> torch.Tensor:
    """Backbone features of one image view of each item (rows in item order), from the run's decoded-image cache
    where there is one (use_cache); across ranks each rank computes its share and every rank gets all rows.
    model_views (default: the view alone) are the views of the model the features are for: the photo is
    decoded as that model's predictor decodes it."""
    model = built.model.to(device).eval()
    pre = built.preprocess
    views = PhotoViews.of(pre, model_views or (view,), dict(zip(items, people, strict=True))).only(view)
    loader = image_batches(
        items, pre, views, batch_size=batch_size, device=device, train=False, augment=False, seed=0,
        requested_workers=requested_workers, use_cache=use_cache,
    )  # fmt: skip
    out: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    steps = len(loader)
    for step, (x, _, pos) in enumerate(loader, start=1):
        with autocast(device):
            out.append(model.view_features(x[view]).float().cpu())
        positions.append(pos)
        reporter.step(epoch=1, epochs=1, step=step, steps=steps, images=len(pos))
    local = torch.cat(out) if out else torch.zeros(0, model.backbone_dim)
    where = torch.cat(positions) if positions else torch.zeros(0, dtype=torch.long)
    return gather_rows(where, local, len(items))


def cached_features(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    device: torch.device,
    reporter: Reporter,
    store: VectorStore | None,
    people: Sequence[PersonInput] | None = None,
) -> tuple[torch.Tensor, int]:
    """The head's input for each item, in order, computing only what the store lacks; returns (features,
    number of image-view vectors computed).

    A person view without a person shows the whole photo, so it reuses the whole view's vector.
    """
    people = list(people) if people is not None else [NOBODY] * len(items)
    model = built.model
    columns: list[torch.Tensor] = []
    computed = 0
    reporter.start_phase("embedding")
    whole = None
    if "whole" in model.image_views or any(p.box is None for p in people):
        whole, n = _whole_vectors(built, config, items, device, reporter, store)
        computed += n
    if "whole" in model.image_views:
        assert whole is not None
        columns.append(whole)
    if "person" in model.image_views:
        person, n = _person_vectors(built, config, items, people, whole, device, reporter, store)
        columns.append(person)
        computed += n
    if model.pose_dim:
        poses = [p.pose if p.pose is not None else np.zeros(model.pose_dim, np.float32) for p in people]
        columns.append(
            torch.from_numpy(np.stack(poses).astype(np.float32)) if poses else torch.zeros(0, model.pose_dim)
        )
    return torch.cat(columns, dim=1), computed


def _whole_vectors(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    device: torch.device,
    reporter: Reporter,
    store: VectorStore | None,
) -> tuple[torch.Tensor, int]:
    key = model_key(config, built, "whole")
    ids = [it.image_id for it in items]
    cached = store.get_embeddings(key, sorted(set(ids))) if store is not None else {}
    cached = from_leader(cached)  # across ranks only rank 0 has the project: its cache decides what is computed
    by_id = {i: torch.from_numpy(np.frombuffer(blob, dtype=np.float32).copy()) for i, blob in cached.items()}
    missing = list({it.image_id: it for it in items if it.image_id not in by_id}.values())
    if missing:
        fresh = compute_view_features(
            built, missing, [NOBODY] * len(missing), "whole", device, config.batch_size, reporter,
            config.loader_workers, config.decoded_cache, config.views,
        )  # fmt: skip
        for item, vector in zip(missing, fresh, strict=True):
            by_id[item.image_id] = vector
    if store is not None and missing:
        store.put_embeddings(key, {it.image_id: by_id[it.image_id].numpy().tobytes() for it in missing})
    dim = built.model.backbone_dim
    return (torch.stack([by_id[i] for i in ids]) if ids else torch.zeros(0, dim)), len(missing)


def _person_vectors(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    people: Sequence[PersonInput],
    whole: torch.Tensor | None,
    device: torch.device,
    reporter: Reporter,
    store: VectorStore | None,
) -> tuple[torch.Tensor, int]:
    dim = built.model.backbone_dim
    key = model_key(config, built, "person")
    ids = sorted({it.image_id for it, p in zip(items, people, strict=True) if p.box is not None})
    cached = from_leader(store.get_embeddings(key, ids) if store is not None else {})
    rows = {i: BoxRows.decode(cached.get(i, b""), dim) for i in ids}
    out: list[torch.Tensor | None] = []
    missing: list[int] = []
    for n, (item, person) in enumerate(zip(items, people, strict=True)):
        if person.box is None:
            assert whole is not None
            out.append(whole[n])
            continue
        found = rows[item.image_id].find(person.box)
        out.append(torch.from_numpy(found.copy()) if found is not None else None)
        if found is None:
            missing.append(n)
    if missing:
        fresh = compute_view_features(
            built, [items[n] for n in missing], [people[n] for n in missing], "person", device, config.batch_size,
            reporter, config.loader_workers, config.decoded_cache, config.views,
        )  # fmt: skip
        for n, vector in zip(missing, fresh, strict=True):
            out[n] = vector
            box = people[n].box
            assert box is not None
            rows[items[n].image_id].add(box, vector.numpy())
        if store is not None:
            touched = {items[n].image_id for n in missing}
            store.put_embeddings(key, {i: rows[i].encode() for i in touched})
    vectors = [v for v in out if v is not None]
    return (torch.stack(vectors) if vectors else torch.zeros(0, dim)), len(missing)
