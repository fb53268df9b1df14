"""Exporting a trained model to ONNX, running the export with onnxruntime, and checking the two agree.

The ONNX graph is the network with its calibration: inputs named after the views ("whole", "person",
"pose"), output the calibrated class probabilities. Everything around it (reading the photo, finding the
person, the pose features, resizing and normalising) stays in harapp.ml.predictor, which runs the export
through the same code as a checkpoint; the file's metadata carries what that code needs.
"""

from __future__ import annotations

import json
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from harapp.core.atomic import atomic_write_bytes
from harapp.core.errors import HarappError
from harapp.core.types import Box
from harapp.ml.checkpoint import Checkpoint, load_checkpoint, restore_model
from harapp.ml.models import HarModel, Preprocess
from harapp.ml.pose import ESTIMATOR_VERSION, POSE_DIM
from harapp.ml.predictor import ModelSpec, Predictor
from harapp.ml.views import View, check_views

FORMAT = "harapp-onnx"
VERSION = 1
OPSET = 17
OUTPUT = "probabilities"


class OnnxModelError(HarappError):
    """An ONNX file that harapp cannot use: not an export of harapp's, damaged, or of a newer format."""


class _Probabilities(nn.Module):
    """The network as exported: views in, calibrated probabilities out."""

    def __init__(self, model: HarModel) -> None:
        super().__init__()
        self.model = model
        self.views = model.views

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        given = dict(zip(self.views, inputs, strict=True))
        return self.model.probabilities(given.get("whole"), given.get("person"), given.get("pose"))


@dataclass(frozen=True)
class Parity:
    """How closely the export reproduces the checkpoint on real photos."""

    images: int
    agreement: float
    """Share of photos whose top class is the same."""
    max_abs_diff: float
    """Largest difference of any class probability."""
    sample: str

    @property
    def ok(self) -> bool:
        return self.agreement == 1.0 and self.max_abs_diff <= 1e-4


def export_onnx(checkpoint: Checkpoint | Path | str, out: Path) -> Path:
    """Write the checkpoint's model as ONNX to `out` (atomically), with harapp's metadata."""
    import onnx

    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    model = restore_model(ckpt).eval()
    wrapper = _Probabilities(model).eval()
    size = ckpt.preprocess.image_size
    example = tuple(
        torch.zeros(2, POSE_DIM) if view == "pose" else torch.zeros(2, 3, size, size) for view in model.views
    )
    names = list(model.views)
    buffer = _export_bytes(wrapper, example, names)
    proto = onnx.load_model_from_string(buffer)
    for key, value in metadata(ckpt).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    out = Path(out)
    try:
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as exc:
        raise OnnxModelError(f"Cannot write {out}: {exc.strerror or exc}") from exc
    return out


def _export_bytes(wrapper: nn.Module, example: tuple[torch.Tensor, ...], names: Sequence[str]) -> bytes:
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The tracer warns about Python ints taken from tensor shapes (the number of views, the batch size
        # it splits by): they are fixed per model, and the batch axis is declared dynamic below.
        warnings.simplefilter("ignore")
        torch.onnx.export(  # the legacy exporter writes to file objects too; its stub names paths only
            wrapper, example, buffer,  # type: ignore[arg-type]
            input_names=list(names), output_names=[OUTPUT], opset_version=OPSET,
            dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT]}, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def metadata(ckpt: Checkpoint) -> dict[str, str]:
    """What the image pipeline needs to run the export, as the ONNX file's metadata (strings)."""
    return {
        "harapp_format": FORMAT,
        "harapp_format_version": str(VERSION),
        "class_names": json.dumps(list(ckpt.class_names)),
        "preprocess": json.dumps(ckpt.preprocess.to_dict()),
        "views": json.dumps(list(ckpt.config.views)),
        "calibration": json.dumps({"temperatures_by_predicted_class": ckpt.head_state["temperature"].tolist()}),
        "pose_estimator": ESTIMATOR_VERSION,
        "model_kind": ckpt.config.model_kind,
        "mode": ckpt.config.mode,
        "label_revision": str(ckpt.label_revision),
        "source_checkpoint": ckpt.path.name,
    }


def onnx_predictor(path: Path, *, detect: bool = True) -> Predictor:
    """A Predictor that runs a harapp ONNX export with onnxruntime."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"ONNX model {path} does not exist.")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for damaged or foreign files
        raise OnnxModelError(f"Cannot load {path} as an ONNX model: {str(exc).splitlines()[0]}") from exc
    meta = dict(session.get_modelmeta().custom_metadata_map)
    spec = _spec(path, meta)
    inputs = [i.name for i in session.get_inputs()]
    if sorted(inputs) != sorted(spec.views):
        raise OnnxModelError(f"{path}: its inputs {inputs} do not match its views {list(spec.views)}.")

    def run(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: batch[name].numpy().astype(np.float32) for name in inputs}
        return torch.from_numpy(np.asarray(session.run([OUTPUT], feed)[0], dtype=np.float32))

    return Predictor(spec, run, detect=detect)


def _spec(path: Path, meta: dict[str, str]) -> ModelSpec:
    if meta.get("harapp_format") != FORMAT:
        raise OnnxModelError(
            f"{path} is not a harapp export (its metadata has no harapp model description); export a model with "
            "`harapp export-model CHECKPOINT -f onnx OUT.onnx`."
        )
    try:
        version = int(meta.get("harapp_format_version", "0"))
    except ValueError as exc:
        raise OnnxModelError(f"{path}: its harapp metadata is damaged ({exc}).") from exc
    if version > VERSION:
        raise OnnxModelError(f"{path} was exported by a newer harapp (format {version}).")
    try:
        views: tuple[View, ...] = check_views(json.loads(meta["views"]))
        return ModelSpec(
            tuple(json.loads(meta["class_names"])), Preprocess.from_dict(json.loads(meta["preprocess"])), views
        )
    except (KeyError, ValueError, TypeError, HarappError) as exc:
        raise OnnxModelError(f"{path}: its harapp metadata is damaged ({exc}).") from exc


def check_parity(
    checkpoint: Checkpoint | Path | str,
    exported: Path,
    photos: Sequence[tuple[Path, tuple[Box, ...]]],
    *,
    sample: str = "",
) -> Parity:
    """Predict the photos with the checkpoint (torch) and the export (onnxruntime) through the same pipeline."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    reference = Predictor.from_checkpoint(ckpt, device="cpu")
    candidate = onnx_predictor(exported)
    paths = [p for p, _ in photos]
    boxes = [b for _, b in photos]
    a = reference.predict_batch(list(paths), boxes)
    b = candidate.predict_batch(list(paths), boxes)
    agree = sum(int(x.top_class == y.top_class) for x, y in zip(a, b, strict=True))
    diff = max(
        (abs(p - q) for x, y in zip(a, b, strict=True) for p, q in zip(x.probabilities, y.probabilities, strict=True)),
        default=0.0,
    )
    return Parity(len(a), agree / len(a) if a else 1.0, float(diff), sample)


def sample_photos(
    items: Sequence[tuple[Path, tuple[Box, ...]]], n: int, seed: int = 0
) -> list[tuple[Path, tuple[Box, ...]]]:
    present = [it for it in items if it[0].is_file()]
    return random.Random(seed).sample(present, min(n, len(present)))
