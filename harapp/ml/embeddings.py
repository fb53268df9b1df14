"""Frozen-backbone features of every view of a photo, cached in the project per image (and person box).

A linear probe, CLIP zero-shot, label-quality scores and project-wide predictions of such models all work
from these vectors, so after the first run a retrain or a re-scoring decodes no photo at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
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
    model = built.with_backbone().model.to(device).eval()
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
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, int]:
    """The head's input for each item, in order, computing only what the store lacks; returns (features,
    number of image-view vectors computed).

    A person view without a person shows the whole photo, so it reuses the whole view's vector. The features
    (of ``dtype``: float16 halves 100k vectors) are one matrix, filled in place as the cached vectors are read
    a chunk of images at a time: reading them all at once held each vector as bytes, then as a tensor, then
    stacked, then the views concatenated (a 4.8 GB peak for `harapp review` of 110k vectors).
    """
    people = list(people) if people is not None else [NOBODY] * len(items)
    model = built.model
    dim = model.backbone_dim
    out = torch.zeros(len(items), model.feature_dim, dtype=dtype)
    shown = [view for view in ("whole", "person") if view in model.image_views]
    column = {view: out[:, k * dim : (k + 1) * dim] for k, view in enumerate(shown)}
    computed = 0
    reporter.start_phase("embedding")
    no_box = [n for n, p in enumerate(people) if p.box is None]
    if "whole" in column or no_box:
        targets = [(column["whole"], _positions(items, range(len(items))))] if "whole" in column else []
        if "person" in column and no_box:
            targets.append((column["person"], _positions(items, no_box)))
        computed += _whole_vectors(built, config, items, device, reporter, store, targets)
    if "person" in column:
        computed += _person_vectors(built, config, items, people, device, reporter, store, column["person"])
    if model.pose_dim and people:
        poses = [p.pose if p.pose is not None else np.zeros(model.pose_dim, np.float32) for p in people]
        out[:, len(shown) * dim :] = torch.from_numpy(np.stack(poses).astype(np.float32))
    return out, computed


CHUNK_IMAGES = 1024
"""Images whose cached vectors are read from the store at once. Reading 110k images' whole and person vectors
into a float16 matrix grew the process by 10 MB beyond the matrix in chunks of 1,024 images, by 90 MB in
chunks of 4,096 (the bytes and arrays of a chunk leave the heap larger than they were)."""

_Target = tuple[torch.Tensor, dict[int, list[int]]]
"""A column block of the features, and which of its rows show each image."""


def _positions(items: Sequence[LabelledItem], where: Iterable[int]) -> dict[int, list[int]]:
    """The positions among `where` of each image's items."""
    out: dict[int, list[int]] = {}
    for n in where:
        out.setdefault(items[n].image_id, []).append(n)
    return out


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK_IMAGES):
        yield ids[start : start + CHUNK_IMAGES]


def _write(targets: Sequence[_Target], image_ids: Sequence[int], vectors: torch.Tensor) -> None:
    """Each image's vector (row k for image_ids[k]) into every row of the targets that shows it."""
    for column, positions in targets:
        pairs = [(row, k) for k, image_id in enumerate(image_ids) for row in positions.get(image_id, ())]
        if pairs:
            rows, which = zip(*pairs, strict=True)
            column[list(rows)] = vectors[list(which)].to(column.dtype)


def _whole_vectors(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    device: torch.device,
    reporter: Reporter,
    store: VectorStore | None,
    targets: Sequence[_Target],
) -> int:
    """Every item's whole-view vector, written where `targets` show it; returns how many were computed."""
    key = model_key(config, built, "whole")
    absent: set[int] = set()
    for chunk in _chunks(sorted({it.image_id for it in items})):
        # Across ranks only rank 0 has the project: its cache decides what is computed.
        cached = from_leader(store.get_embeddings(key, chunk) if store is not None else {})
        found = [i for i in chunk if i in cached]
        absent.update(i for i in chunk if i not in cached)
        if found:
            _write(targets, found, torch.from_numpy(np.stack([np.frombuffer(cached[i], np.float32) for i in found])))
    missing = list({it.image_id: it for it in items if it.image_id in absent}.values())
    if missing:
        fresh = compute_view_features(
            built, missing, [NOBODY] * len(missing), "whole", device, config.batch_size, reporter,
            config.loader_workers, config.decoded_cache, config.views,
        )  # fmt: skip
        _write(targets, [it.image_id for it in missing], fresh)
        if store is not None:
            store.put_embeddings(key, {it.image_id: v.numpy().tobytes() for it, v in zip(missing, fresh, strict=True)})
    return len(missing)


def _person_vectors(
    built: BuiltModel,
    config: TrainConfig,
    items: Sequence[LabelledItem],
    people: Sequence[PersonInput],
    device: torch.device,
    reporter: Reporter,
    store: VectorStore | None,
    column: torch.Tensor,
) -> int:
    """The person-view vector of every item with a person box, written into its row of `column`; returns how
    many were computed."""
    dim = built.model.backbone_dim
    key = model_key(config, built, "person")
    boxed = _positions(items, (n for n, p in enumerate(people) if p.box is not None))
    missing: list[int] = []
    rows_of: dict[int, BoxRows] = {}  # the cached rows of the images that get a new one
    for chunk in _chunks(sorted(boxed)):
        cached = from_leader(store.get_embeddings(key, chunk) if store is not None else {})
        found_at: list[int] = []
        found: list[np.ndarray] = []
        for image_id in chunk:
            rows = BoxRows.decode(cached.get(image_id, b""), dim)
            for n in boxed[image_id]:
                box = people[n].box
                vector = rows.find(box) if box is not None else None
                if vector is None:
                    missing.append(n)
                    rows_of[image_id] = rows
                else:
                    found_at.append(n)
                    found.append(vector)
        if found:
            column[found_at] = torch.from_numpy(np.stack(found)).to(column.dtype)
    if missing:
        missing.sort()  # item order
        fresh = compute_view_features(
            built, [items[n] for n in missing], [people[n] for n in missing], "person", device, config.batch_size,
            reporter, config.loader_workers, config.decoded_cache, config.views,
        )  # fmt: skip
        column[missing] = fresh.to(column.dtype)
        for n, vector in zip(missing, fresh, strict=True):
            box = people[n].box
            assert box is not None
            rows_of[items[n].image_id].add(box, vector.numpy())
        if store is not None:
            touched = {items[n].image_id for n in missing}
            store.put_embeddings(key, {i: rows_of[i].encode() for i in touched})
    return len(missing)
