"""ONNX export: every kind exports with its calibration and views, and onnxruntime reproduces the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from harapp.cli import main
from harapp.core.types import LabelSnapshot
from harapp.ml.config import TrainConfig
from harapp.ml.onnx_export import OnnxModelError, check_parity, export_onnx, onnx_predictor
from harapp.ml.predictor import Predictor
from harapp.ml.trainer import train

KINDS = [
    {"model_kind": "cnn-scratch", "mode": "scratch", "image_size": 32},
    {"model_kind": "resnet18", "mode": "scratch", "image_size": 32},
    {"model_kind": "resnet50", "mode": "scratch", "image_size": 32},
    {"model_kind": "efficientnet-lite0", "mode": "linear-probe", "image_size": 64},
    {"model_kind": "clip", "mode": "linear-probe", "pretrained": False},
]


@pytest.mark.parametrize("case", KINDS, ids=lambda c: f"{c['model_kind']}-{c['mode']}")
def test_every_kind_exports_and_onnxruntime_agrees(
    case: dict, shapes_snapshot: LabelSnapshot, tiny_clip: str, tmp_path: Path
) -> None:
    config = TrainConfig(**{"epochs": 1, "batch_size": 16, "device": "cpu", "clip_model": tiny_clip, **case})
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert result.checkpoint_path is not None
    out = export_onnx(result.checkpoint_path, tmp_path / "m.onnx")
    photos = [(it.path, it.person_boxes) for it in shapes_snapshot.items[:12]]
    parity = check_parity(result.checkpoint_path, out, photos)
    assert parity.images == 12 and parity.agreement == 1.0 and parity.max_abs_diff <= 1e-4 and parity.ok
    exported = onnx_predictor(out)
    assert exported.views == ("whole", "person", "pose") and exported.class_names == shapes_snapshot.class_names


def test_export_and_predict_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.ml.conftest import draw_shapes, project_from_items

    root = tmp_path / "imgs"
    project_path = tmp_path / "p.harapp"
    project_from_items(project_path, draw_shapes(root, 24), root).close()  # type: ignore[attr-defined]
    args = ["--model", "cnn-scratch", "--image-size", "32", "--epochs", "1", "--device", "cpu"]
    assert main(["train", str(project_path), *args]) == 0
    checkpoint = next((tmp_path / "p.models").glob("*.pt"))
    capsys.readouterr()
    assert main(["export-model", str(checkpoint), "-f", "onnx", str(tmp_path / "m.onnx"), "--sample", "8"]) == 0
    out = capsys.readouterr().out
    assert "parity on 8 photos of p.harapp: top-1 agreement 100.0%" in out and "OK" in out
    assert main(["predict", str(tmp_path / "m.onnx"), str(root / "shape_0003.png"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    reference = Predictor.from_checkpoint(checkpoint, device="cpu").predict(root / "shape_0003.png")
    assert not isinstance(reference, list)
    assert line["top_class"] == reference.top_class
    assert line["probabilities"][reference.top_class] == pytest.approx(reference.top_probability, abs=1e-4)


def test_files_that_are_not_harapp_exports_get_a_clear_message(tmp_path: Path) -> None:
    foreign = tmp_path / "linear.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2).eval(), (torch.zeros(1, 3),), str(foreign), dynamo=False)
    with pytest.raises(OnnxModelError, match="not a harapp export"):
        onnx_predictor(foreign)
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(OnnxModelError, match="Cannot load .*notes.onnx as an ONNX model"):
        onnx_predictor(text)
    with pytest.raises(OnnxModelError, match="does not exist"):
        onnx_predictor(tmp_path / "missing.onnx")
    assert main(["predict", str(text), str(tmp_path)]) == 1


def test_damaged_harapp_metadata_is_named(tmp_path: Path) -> None:
    import onnx

    from harapp.ml.onnx_export import FORMAT

    path = tmp_path / "damaged.onnx"
    torch.onnx.export(torch.nn.Linear(3, 2).eval(), (torch.zeros(1, 3),), str(path), dynamo=False)
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {"harapp_format": FORMAT, "harapp_format_version": "two"})
    onnx.save(model, str(path))
    with pytest.raises(OnnxModelError, match="damaged.onnx: its harapp metadata is damaged"):
        onnx_predictor(path)
    onnx.helper.set_model_props(model, {"harapp_format": FORMAT, "harapp_format_version": "99"})
    onnx.save(model, str(path))
    with pytest.raises(OnnxModelError, match="exported by a newer harapp"):
        onnx_predictor(path)


@pytest.mark.parametrize("stored", [[0.5, 1.0, 2.0, 4.0], 2.0], ids=["per-class", "older-one-temperature"])
def test_the_export_applies_each_predicted_class_temperature(
    shapes_snapshot: LabelSnapshot, tmp_path: Path, stored: list[float] | float
) -> None:
    """Temperatures far apart, so that one temperature for all rows could not reproduce the checkpoint."""
    import onnxruntime

    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=16, device="cpu")
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert result.checkpoint_path is not None and result.metrics is not None and result.metrics.calibration is not None
    # A scratch CNN's temperatures are fitted on its validation images, one per class as for a probe.
    assert len(result.metrics.calibration.temperatures) == len(shapes_snapshot.class_names)
    raw = torch.load(result.checkpoint_path, weights_only=True)
    names = raw["class_names"]
    values = torch.tensor(stored)
    raw["head_state"]["temperature"] = values if values.dim() == 0 else values[: len(names)]
    edited = tmp_path / "edited.pt"
    torch.save(raw, edited)
    out = export_onnx(edited, tmp_path / "m.onnx")
    photos = [(it.path, it.person_boxes) for it in shapes_snapshot.items[:12]]
    parity = check_parity(edited, out, photos)
    assert parity.agreement == 1.0 and parity.max_abs_diff <= 1e-4 and parity.ok
    meta = onnxruntime.InferenceSession(str(out)).get_modelmeta().custom_metadata_map
    expected = [2.0] * len(names) if values.dim() == 0 else stored[: len(names)]
    assert json.loads(meta["calibration"]) == {"temperatures_by_predicted_class": expected}
