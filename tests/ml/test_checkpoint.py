"""Checkpoints: atomic writes, safe loading, class checks, metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from harapp.core.errors import HarappError
from harapp.core.types import LabelSnapshot
from harapp.ml import checkpoint as C
from harapp.ml.config import TrainConfig
from harapp.ml.metrics import compute_metrics, format_metrics
from harapp.ml.models import calibrated_probabilities
from harapp.ml.trainer import train


@pytest.fixture
def trained(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> Path:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=1, batch_size=8, device="cpu")
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert result.checkpoint_path is not None
    return result.checkpoint_path


def test_checkpoint_holds_plain_data_and_loads_weights_only(trained: Path) -> None:
    raw = torch.load(trained, weights_only=True)
    assert raw["format"] == "harapp-checkpoint"
    assert raw["model"]["kind"] == "cnn-scratch"
    assert raw["preprocess"]["image_size"] == 32
    assert raw["config"]["mode"] == "scratch"
    assert set(raw["metrics"]) >= {"accuracy", "macro_f1", "per_class", "confusion"}
    assert raw["created_at"] and raw["started_at"]
    ckpt = C.load_checkpoint(trained)
    assert ckpt.metrics is not None and ckpt.metrics.class_names == ckpt.class_names


def test_failed_write_keeps_the_previous_checkpoint(trained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = trained.read_bytes()
    ckpt = C.load_checkpoint(trained)
    built = C.build_model(ckpt.config, ckpt.class_names)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        C.save_checkpoint(
            trained, built, ckpt.config, ckpt.class_names, metrics=None, metrics_split="val", label_revision=0,
            complete=False, backbone_changed=True,
        )  # fmt: skip
    assert trained.read_bytes() == before
    assert [p.name for p in trained.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_corrupt_and_foreign_files_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(C.CheckpointError, match="bad.pt"):
        C.load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(C.CheckpointError, match="not a harapp checkpoint"):
        C.load_checkpoint(foreign)
    with pytest.raises(C.CheckpointError, match="does not exist"):
        C.load_checkpoint(tmp_path / "missing.pt")


def test_check_classes_names_the_difference(trained: Path) -> None:
    ckpt = C.load_checkpoint(trained)
    C.check_classes(ckpt, list(ckpt.class_names))
    with pytest.raises(HarappError, match=r"project lacks running.*Retrain"):
        C.check_classes(ckpt, ["walking", "sitting", "standing"])
    with pytest.raises(HarappError, match="model does not know jumping"):
        C.check_classes(ckpt, [*ckpt.class_names, "jumping"])
    with pytest.raises(HarappError, match="order differs"):
        C.check_classes(ckpt, list(reversed(ckpt.class_names)))


def test_metrics_by_hand() -> None:
    m = compute_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ("a", "b", "c"), [10, 11, 12, 13, 14])
    assert m.accuracy == pytest.approx(3 / 5)
    assert m.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert m.per_class["a"]["precision"] == pytest.approx(0.5)
    assert m.per_class["b"]["precision"] == pytest.approx(2 / 3)
    assert m.per_class["b"]["recall"] == 1.0
    f1_a, f1_b = 0.5, 0.8
    assert m.macro_f1 == pytest.approx((f1_a + f1_b + 0.0) / 3)
    text = format_metrics(m)
    assert "accuracy 0.600" in text and "confusion" in text


@pytest.mark.parametrize("stored", [torch.tensor(2.0), None], ids=["one-temperature", "uncalibrated"])
def test_a_checkpoint_from_before_per_class_temperatures_predicts_as_it_did(
    trained: Path, tmp_path: Path, stored: torch.Tensor | None
) -> None:
    """Older checkpoints hold one temperature for every class, or none at all (from before calibration)."""
    raw = torch.load(trained, weights_only=True)
    del raw["head_state"]["temperature"]
    if stored is not None:
        raw["head_state"]["temperature"] = stored
        calibration = raw["metrics"]["calibration"]
        del calibration["temperatures"]
        calibration["temperature"] = float(stored)
    old = tmp_path / "old.pt"
    torch.save(raw, old)
    ckpt = C.load_checkpoint(old)
    model = C.restore_model(ckpt)
    expected = 1.0 if stored is None else float(stored)
    assert model.head.temperature.tolist() == [expected] * len(ckpt.class_names)
    if stored is not None:
        assert ckpt.metrics is not None and ckpt.metrics.calibration is not None
        assert ckpt.metrics.calibration.temperatures == (expected,)
    features = torch.randn(4, model.head.dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.head(features)
        assert torch.allclose(calibrated_probabilities(logits, model.head.temperature), (logits / expected).softmax(-1))
