"""Checkpoint files: plain types and tensors only, so they load with weights_only=True; written atomically."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harapp.core.atomic import atomic_write_bytes
from harapp.core.errors import HarappError
from harapp.ml.config import TrainConfig
from harapp.ml.errors import CheckpointError
from harapp.ml.metrics import Metrics
from harapp.ml.models import BuiltModel, HarModel, Preprocess, build_model

FORMAT = "harapp-checkpoint"
VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: TrainConfig
    class_names: tuple[str, ...]
    preprocess: Preprocess
    weights_source: str
    metrics: Metrics | None
    metrics_split: str  # "test" for a finished run, "val" for a mid-run checkpoint
    label_revision: int
    created_at: str
    complete: bool
    extra: dict[str, Any]
    head_state: dict[str, torch.Tensor]
    backbone_state: dict[str, torch.Tensor] | None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def save_checkpoint(
    path: Path,
    built: BuiltModel,
    config: TrainConfig,
    class_names: Sequence[str],
    *,
    metrics: Metrics | None,
    metrics_split: str,
    label_revision: int,
    complete: bool,
    backbone_changed: bool,
    extra: dict[str, Any] | None = None,
    started_at: str | None = None,
) -> Path:
    """Write via a temp file and os.replace: a crash leaves the previous checkpoint, never half of one."""
    model = built.model
    # A frozen backbone with downloadable/installed weights need not be copied into every checkpoint.
    keep_backbone = backbone_changed or not built.backbone_pretrained
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"kind": model.kind, "feature_dim": model.feature_dim, "weights_source": built.weights_source},
        "config": config.to_dict(),
        "class_names": list(class_names),
        "preprocess": built.preprocess.to_dict(),
        "metrics": metrics.to_dict() if metrics else None,
        "metrics_split": metrics_split,
        "label_revision": int(label_revision),
        "started_at": started_at or _now(),
        "created_at": _now(),
        "complete": complete,
        "extra": extra or {},
        "head_state": {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()},
        "backbone_state": (
            {k: v.detach().cpu().clone() for k, v in model.backbone.state_dict().items()} if keep_backbone else None
        ),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_checkpoint(path: Path | str) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises various types for truncated or foreign files
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a harapp checkpoint.")
    if int(raw.get("version", 0)) > VERSION:
        raise CheckpointError(f"Checkpoint {path} was written by a newer harapp (format {raw['version']}).")
    return Checkpoint(
        path=path,
        config=TrainConfig.from_dict(raw["config"]),
        class_names=tuple(raw["class_names"]),
        preprocess=Preprocess.from_dict(raw["preprocess"]),
        weights_source=str(raw["model"]["weights_source"]),
        metrics=Metrics.from_dict(raw["metrics"]) if raw.get("metrics") else None,
        metrics_split=str(raw.get("metrics_split", "test")),
        label_revision=int(raw.get("label_revision", 0)),
        created_at=str(raw.get("created_at", "")),
        complete=bool(raw.get("complete", True)),
        extra=dict(raw.get("extra") or {}),
        head_state=raw["head_state"],
        backbone_state=raw.get("backbone_state"),
    )


def restore_model(ckpt: Checkpoint) -> HarModel:
    """Rebuild the network; a checkpoint without backbone weights reloads them from their original source."""
    return restore_built(ckpt).model


def restore_built(ckpt: Checkpoint) -> BuiltModel:
    """The network with its preprocessing and the weights source it was trained from, so that features it
    computes share the project's cache with the training run's."""
    config = ckpt.config
    if ckpt.backbone_state is not None:
        # Weights come from the checkpoint, so skip downloading or reading the original ones.
        config = TrainConfig.from_dict({**config.to_dict(), "pretrained": False, "weights_path": None})
    built = build_model(config, ckpt.class_names, init_head=False)
    model = built.model
    if ckpt.backbone_state is not None:
        model.backbone.load_state_dict(ckpt.backbone_state)
    head_state = dict(ckpt.head_state)
    # Checkpoints from before calibration have no temperature: their probabilities stay as they were.
    head_state.setdefault("temperature", torch.ones(()))
    model.head.load_state_dict(head_state)
    model.eval()
    return dataclasses.replace(built, weights_source=ckpt.weights_source)


def check_classes(ckpt: Checkpoint, project_classes: Sequence[str]) -> None:
    """Refuse a checkpoint whose classes differ from the project's, naming what differs."""
    ours, theirs = tuple(project_classes), ckpt.class_names
    if ours == theirs:
        return
    missing = [c for c in theirs if c not in ours]
    extra = [c for c in ours if c not in theirs]
    detail = []
    if missing:
        detail.append(f"the project lacks {', '.join(missing)}")
    if extra:
        detail.append(f"the model does not know {', '.join(extra)}")
    if not detail:
        detail.append("the order differs")
    raise HarappError(
        f"Model {ckpt.path.name} was trained on classes ({', '.join(theirs)}) but the project has "
        f"({', '.join(ours)}): {'; '.join(detail)}. Retrain the model on this project."
    )
