"""Checkpoint files: plain types and tensors only, so they load with weights_only=True; written atomically."""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import time
import zipfile
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
VERSION = 2  # 2: a temperature per class in the head (older harapp cannot load the head of one)


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


_ZIP_MAGIC = b"PK\x03\x04"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _unreadable(path: Path, exc: BaseException) -> CheckpointError:
    """Why torch.load failed, in words: a file of another kind, or a damaged (e.g. truncated) checkpoint."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as read_error:
        return CheckpointError(f"Cannot read checkpoint {path}: {read_error.strerror or read_error}")
    if head.startswith(_SQLITE_MAGIC):
        return CheckpointError(
            f"{path} is not a harapp checkpoint: it is a project file (.harapp). Checkpoints are the .pt files in "
            "the project's .models folder; `harapp eval` takes the checkpoint first, then the project."
        )
    if head.startswith(_ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            return CheckpointError(f"Checkpoint {path} is damaged: the file is truncated or corrupt.")
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                broken = archive.testzip()
        except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError):
            return CheckpointError(f"Checkpoint {path} is damaged: the file is truncated or corrupt.")
        if broken is not None:
            return CheckpointError(f"Checkpoint {path} is damaged: {broken} inside it fails its checksum.")
        if not any(n.endswith("data.pkl") for n in names):
            return CheckpointError(f"{path} is not a harapp checkpoint (a zip file, but not a PyTorch one).")
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            return CheckpointError(
                f"{path} is not a harapp checkpoint: it holds Python objects a harapp checkpoint never has, and "
                "harapp does not load those (loading them could run any code)."
            )
        return CheckpointError(f"Checkpoint {path} is damaged: PyTorch cannot read it ({str(exc)[:200]}).")
    if head.startswith(_PICKLE_MAGIC):
        return CheckpointError(f"{path} is not a harapp checkpoint (an old-style PyTorch or pickle file).")
    return CheckpointError(f"{path} is not a harapp checkpoint (not a PyTorch file).")


def _check_crcs(path: Path) -> None:
    """PyTorch does not check the CRC32 its zip format stores for each entry, so a flipped bit in the weights
    would load silently; reading the file once more to check them costs about 0.1 s per 100 MB."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError, EOFError) as exc:
        raise CheckpointError(f"Checkpoint {path} is damaged: the file is truncated or corrupt.") from exc
    if broken is not None:
        raise CheckpointError(f"Checkpoint {path} is damaged: {broken} inside it fails its checksum.")


def _tensors(value: Any, what: str, path: Path) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in value.items()):
        raise CheckpointError(f"Checkpoint {path} is damaged: its {what} are not a set of named tensors.")
    return value


def _per_class_temperature(head_state: dict[str, torch.Tensor], classes: int) -> dict[str, torch.Tensor]:
    """Checkpoints from before calibration have no temperature, and those from before per-class temperatures
    one shared by every class: given one per class, their probabilities stay as they were."""
    shared = head_state.get("temperature", torch.ones(()))
    if shared.dim() == 0:
        head_state = {**head_state, "temperature": shared.expand(classes).clone()}
    return head_state


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint; CheckpointError saying 'not a harapp checkpoint' or 'damaged' otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises various types for truncated or foreign files
        raise _unreadable(path, exc) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a harapp checkpoint (a PyTorch file of something else).")
    _check_crcs(path)
    version = raw.get("version", 0)
    if isinstance(version, int) and version > VERSION:
        raise CheckpointError(f"Checkpoint {path} was written by a newer harapp (format {version}).")
    try:
        backbone = raw.get("backbone_state")
        return Checkpoint(
            path=path,
            config=TrainConfig.from_dict(raw["config"]),
            class_names=tuple(str(n) for n in raw["class_names"]),
            preprocess=Preprocess.from_dict(raw["preprocess"]),
            weights_source=str(raw["model"]["weights_source"]),
            metrics=Metrics.from_dict(raw["metrics"]) if raw.get("metrics") else None,
            metrics_split=str(raw.get("metrics_split", "test")),
            label_revision=int(raw.get("label_revision", 0)),
            created_at=str(raw.get("created_at", "")),
            complete=bool(raw.get("complete", True)),
            extra=dict(raw.get("extra") or {}),
            head_state=_per_class_temperature(
                _tensors(raw["head_state"], "head weights", path), len(raw["class_names"])
            ),
            backbone_state=_tensors(backbone, "backbone weights", path) if backbone is not None else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)[:200]
        raise CheckpointError(f"Checkpoint {path} is damaged: a harapp checkpoint, but malformed ({detail}).") from exc


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
    try:
        if ckpt.backbone_state is not None:
            model.backbone.load_state_dict(ckpt.backbone_state)
        model.head.load_state_dict(ckpt.head_state)
    except RuntimeError as exc:  # missing, unexpected or wrongly shaped tensors
        raise CheckpointError(
            f"Checkpoint {ckpt.path} is damaged: its weights do not fit a {config.model_kind} model "
            f"({str(exc).splitlines()[0][:200]})."
        ) from exc
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


def register_checkpoint(project: Any, ckpt: Checkpoint) -> int:
    """Add a checkpoint file to the project's models table: a finished run with its test metrics, an
    interrupted one (a mid-run save) with its validation accuracy, named so the Models list says which."""
    config = ckpt.config
    stamp = ckpt.created_at[:16].replace("T", " ")
    if ckpt.metrics is not None and ckpt.complete:
        metrics = ckpt.metrics.to_dict()
        name = f"{config.model_kind} {config.mode} {stamp} (recovered)"
    else:
        epoch = ckpt.extra.get("epoch")
        metrics = {"class_names": list(ckpt.class_names), "val_accuracy": ckpt.extra.get("val_accuracy")}
        name = f"{config.model_kind} {config.mode} {stamp} (interrupted" + (f" at epoch {epoch})" if epoch else ")")
    return int(
        project.register_model(
            name, config.model_kind, config.mode, ckpt.path, ckpt.label_revision, metrics, config.to_dict()
        )
    )


def adopt_leftovers(project: Any) -> tuple[list[Path], list[int]]:
    """Tidy what killed runs left beside a project: delete stale temporary files, register checkpoints that
    were never registered (foreign or damaged .pt files are left alone). Returns (deleted, new model ids).
    A read-only project is only looked at."""
    from harapp.core.leftovers import clean_stale_temporaries, unregistered_checkpoints

    if getattr(project, "readonly", False):
        return [], []
    removed = clean_stale_temporaries(project.path)
    registered = []
    for path in unregistered_checkpoints(project):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            continue
        if not ckpt.complete and _writer_alive(ckpt.extra):
            continue  # a run in progress saved its best epoch so far; it registers the file when it ends
        registered.append(register_checkpoint(project, ckpt))
    return removed, registered


def _writer_alive(extra: dict[str, Any]) -> bool:
    pid, host = extra.get("writer_pid"), extra.get("writer_host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True
