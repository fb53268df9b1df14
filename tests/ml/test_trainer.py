"""train(): every kind and mode end to end, learning, determinism, cancellation, OOM, k-fold, progress."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from harapp.core.types import LabelSnapshot
from harapp.ml.checkpoint import load_checkpoint
from harapp.ml.config import TrainConfig
from harapp.ml.errors import OutOfMemoryError
from harapp.ml.models import HarModel
from harapp.ml.predictor import Predictor
from harapp.ml.progress import Reporter, TrainProgress
from harapp.ml.trainer import cross_validate, train

FAST = {"epochs": 2, "batch_size": 8, "device": "cpu", "augment": False, "views": ("whole",)}
"""Tests about the training loop itself see the whole photo only; the round trip below uses every view."""

CASES = [
    {"model_kind": "cnn-scratch", "mode": "scratch", "image_size": 32},
    {"model_kind": "resnet18", "mode": "scratch", "image_size": 32},
    {"model_kind": "resnet18", "mode": "linear-probe", "image_size": 32, "weights_path": "local"},
    {"model_kind": "resnet18", "mode": "fine-tune", "image_size": 32, "weights_path": "local"},
    {"model_kind": "resnet50", "mode": "scratch", "image_size": 32},
    {"model_kind": "resnet50", "mode": "fine-tune", "image_size": 32, "weights_path": "local"},
    {"model_kind": "efficientnet-lite0", "mode": "scratch", "image_size": 32},
    {"model_kind": "efficientnet-lite0", "mode": "linear-probe", "image_size": 64},
    {"model_kind": "efficientnet-lite0", "mode": "fine-tune", "image_size": 64, "finetune_last_blocks": 1},
    {"model_kind": "clip", "mode": "zero-shot", "pretrained": False},
    {"model_kind": "clip", "mode": "linear-probe", "pretrained": False},
    {"model_kind": "clip", "mode": "fine-tune", "pretrained": False, "finetune_last_blocks": 1},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model_kind']}-{c['mode']}")
def test_train_checkpoint_predict_round_trip(
    case: dict, shapes_snapshot: LabelSnapshot, tiny_clip: str, tmp_path: Path
) -> None:
    if case.get("weights_path") == "local":  # a torchvision file, as a user would download it by hand
        import torchvision.models as tvm

        local = tmp_path / f"{case['model_kind']}.pth"
        torch.save(getattr(tvm, case["model_kind"])(weights=None).state_dict(), local)
        case = {**case, "weights_path": str(local)}
    config = TrainConfig(**{**FAST, **case, "clip_model": tiny_clip, "views": ("whole", "person", "pose")})
    path = tmp_path / "model.pt"
    result = train(config, shapes_snapshot, path)
    assert not result.cancelled and result.checkpoint_path == path and result.metrics is not None
    metrics = result.metrics
    assert len(metrics.test_image_ids) == sum(sum(row) for row in metrics.confusion) > 0
    assert set(metrics.per_class) == set(shapes_snapshot.class_names)

    ckpt = load_checkpoint(path)  # weights_only=True inside
    assert ckpt.complete and ckpt.metrics_split == "test"
    assert ckpt.class_names == shapes_snapshot.class_names
    assert ckpt.config == config.validate()
    assert ckpt.label_revision == shapes_snapshot.revision
    assert ckpt.metrics is not None and ckpt.metrics.accuracy == metrics.accuracy
    # Every mode calibrates with a temperature per class (fitted on validation, out-of-fold or labelled photos).
    temperatures = ckpt.head_state["temperature"]
    assert temperatures.shape == (len(ckpt.class_names),) and bool((temperatures > 0).all())
    assert metrics.calibration is not None and metrics.calibration.temperatures == tuple(temperatures.tolist())
    # Only a frozen, pretrained backbone is left out (EfficientNet's weights ship with a package).
    assert (ckpt.backbone_state is None) == (case["mode"] == "linear-probe" and case["model_kind"] != "clip")

    predictor = Predictor.from_checkpoint(path, device="cpu")
    by_id = {it.image_id: it for it in shapes_snapshot.items}
    test_items = [by_id[i] for i in metrics.test_image_ids]
    preds = predictor.predict([it.path for it in test_items], [it.person_boxes for it in test_items])
    assert isinstance(preds, list)
    # The restored model predicts exactly what the trained one did on the held-out images.
    assert [predictor.class_names.index(p.top_class) for p in preds] == list(metrics.test_predictions)
    for p, item in zip(preds, test_items, strict=True):
        assert abs(sum(p.probabilities) - 1) < 1e-4 and p.latency_ms > 0
        assert p.sorted()[0] == (p.top_class, p.top_probability)
        # Every default model sees the annotated person's square beside the whole photo.
        assert p.person_source == "annotation" and p.person_box == item.person_boxes[0]
    # The stored held-out probabilities are the calibrated ones the predictor gives.
    for p, row in zip(preds, metrics.test_probabilities, strict=True):
        assert p.probabilities == pytest.approx(row, abs=1e-4)
    assert ckpt.config.views == ("whole", "person", "pose")


def test_cnn_scratch_learns_the_demo_dataset(demo_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", epochs=10, batch_size=16, lr=3e-3, image_size=32,
        views=("person",), augment=False, early_stopping_patience=0, device="cpu", seed=0,
    )  # fmt: skip
    result = train(config, demo_snapshot, tmp_path / "demo.pt")
    assert result.metrics is not None
    best_val = max(h["val_accuracy"] for h in result.history if h.get("val_accuracy") is not None)
    # Four balanced classes: chance is 0.25. Seeded on CPU, this run reaches ~0.85 val / ~0.7 test.
    assert best_val >= 0.6
    assert result.metrics.accuracy >= 0.45


def test_training_is_deterministic_on_cpu(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **{**FAST, "augment": True})
    a = train(config, shapes_snapshot, tmp_path / "a.pt")
    b = train(config, shapes_snapshot, tmp_path / "b.pt")
    assert a.history == b.history
    head_a, head_b = load_checkpoint(tmp_path / "a.pt").head_state, load_checkpoint(tmp_path / "b.pt").head_state
    assert all(torch.equal(head_a[k], head_b[k]) for k in head_a)
    c = train(TrainConfig(**{**config.to_dict(), "seed": 1}), shapes_snapshot, tmp_path / "c.pt")
    assert c.history != a.history


def test_cancel_mid_run_keeps_last_good_checkpoint(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[TrainProgress] = []

    def progress(p: TrainProgress) -> None:
        seen.append(p)
        if p.phase == "training" and p.epoch >= 3:
            cancel.set()

    config = TrainConfig(
        model_kind="cnn-scratch", mode="scratch", image_size=32, epochs=6, batch_size=8, device="cpu",
        early_stopping_patience=0,
    )  # fmt: skip
    result = train(config, shapes_snapshot, tmp_path / "m.pt", progress=progress, cancel=cancel)
    assert result.cancelled and result.metrics is None and result.model_id is None
    assert result.checkpoint_path == tmp_path / "m.pt"
    ckpt = load_checkpoint(result.checkpoint_path)
    assert not ckpt.complete and ckpt.metrics_split == "val" and ckpt.extra["epoch"] <= 3
    assert max(p.epoch for p in seen) == 3  # stopped at the first step after the request
    pred = Predictor.from_checkpoint(result.checkpoint_path, device="cpu").predict(shapes_snapshot.items[0].path)
    assert not isinstance(pred, list) and pred.top_class in shapes_snapshot.class_names


def test_cancel_before_any_checkpoint_leaves_old_file(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"previous model")
    cancel = threading.Event()
    cancel.set()
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **FAST)
    result = train(config, shapes_snapshot, path, cancel=cancel)
    assert result.cancelled and result.checkpoint_path is None
    assert path.read_bytes() == b"previous model"


def _raise_oom_when(monkeypatch: pytest.MonkeyPatch, min_batch: int) -> list[int]:
    batches: list[int] = []  # sizes of training batches
    original = HarModel.forward

    def forward(self: HarModel, whole: torch.Tensor | None = None, **views: torch.Tensor) -> torch.Tensor:
        assert whole is not None
        if self.training:
            batches.append(len(whole))
        if self.training and len(whole) >= min_batch:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, whole, **views)

    monkeypatch.setattr(HarModel, "forward", forward)
    return batches


def test_cuda_oom_gives_clear_error(shapes_snapshot: LabelSnapshot, tmp_path: Path, monkeypatch) -> None:
    _raise_oom_when(monkeypatch, min_batch=1)
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **{**FAST, "batch_size": 16})
    with pytest.raises(OutOfMemoryError, match=r"batch size 16.*--batch-size 4"):
        train(config, shapes_snapshot, tmp_path / "m.pt")


def test_cuda_oom_retries_at_half_batch(shapes_snapshot: LabelSnapshot, tmp_path: Path, monkeypatch) -> None:
    batches = _raise_oom_when(monkeypatch, min_batch=9)
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **{**FAST, "batch_size": 16})
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert not result.cancelled and result.metrics is not None
    assert {"event": "oom-retry", "batch_size": 8} in result.history
    assert batches[0] == 16 and batches[1:] and max(batches[1:]) == 8


def test_progress_reports_are_rate_limited_and_complete(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    seen: list[TrainProgress] = []
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **{**FAST, "epochs": 3})
    train(config, shapes_snapshot, tmp_path / "m.pt", progress=seen.append)
    training = [p for p in seen if p.phase == "training"]
    assert training and training[-1].fraction == 1.0
    assert all(p.images_per_second > 0 for p in training if p.step)
    assert any(p.val_accuracy is not None for p in training)
    assert all(b.fraction >= a.fraction for a, b in zip(training, training[1:], strict=False))


def test_reporter_limits_rate_with_a_fake_clock() -> None:
    now = [0.0]
    calls: list[TrainProgress] = []
    reporter = Reporter(calls.append, None, max_rate=10, clock=lambda: now[0])
    reporter.start_phase("training")
    for step in range(1, 1001):  # 1000 steps over one second
        now[0] += 0.001
        reporter.step(epoch=1, epochs=1, step=step, steps=1000, images=4, loss=1.0)
    assert 10 <= len(calls) <= 12
    assert calls[-1].fraction == 1.0 and calls[-1].eta_seconds == 0
    assert abs(calls[-1].images_per_second - 4000) < 50


def test_kfold_partitions_the_data(shapes_snapshot: LabelSnapshot) -> None:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, folds=3, **{**FAST, "epochs": 1})
    folds = cross_validate(config, shapes_snapshot)
    assert len(folds) == 3
    ids = [i for m in folds for i in m.test_image_ids]
    assert sorted(ids) == sorted(it.image_id for it in shapes_snapshot.items)


def test_train_with_folds_records_them(shapes_snapshot: LabelSnapshot, tmp_path: Path) -> None:
    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, folds=2, **{**FAST, "epochs": 1})
    result = train(config, shapes_snapshot, tmp_path / "m.pt")
    assert [h["fold"] for h in result.history if "fold" in h] == [0, 1]
    assert len(load_checkpoint(tmp_path / "m.pt").extra["cv"]) == 2


def test_bad_snapshots_are_refused(tmp_path: Path, shapes_snapshot: LabelSnapshot) -> None:
    from harapp.core.errors import HarappError

    config = TrainConfig(model_kind="cnn-scratch", mode="scratch", image_size=32, **FAST)
    empty = LabelSnapshot(shapes_snapshot.class_names, (), 0, None)
    with pytest.raises(HarappError, match="no labelled images"):
        train(config, empty, tmp_path / "m.pt")
    one_class = LabelSnapshot(shapes_snapshot.class_names, tuple(shapes_snapshot.items[::4]), 0, None)
    with pytest.raises(HarappError, match="same class"):
        train(config, one_class, tmp_path / "m.pt")


def test_effnet_fine_tune_starts_from_probe_and_keeps_norm_statistics(
    shapes_snapshot: LabelSnapshot, tmp_path: Path
) -> None:
    from harapp.ml.cnn_models import efficientnet_lite0_backbone

    config = TrainConfig(
        model_kind="efficientnet-lite0", mode="fine-tune", image_size=64, finetune_last_blocks=1, **FAST
    )
    result = train(config, shapes_snapshot, tmp_path / "ft.pt")
    stages = [h.get("stage") for h in result.history if "epoch" in h]
    assert stages[0] == "linear-probe" and stages.count(None) >= 1
    backbone = load_checkpoint(tmp_path / "ft.pt").backbone_state
    assert backbone is not None
    pretrained = efficientnet_lite0_backbone(pretrained=True, num_classes=0).state_dict()
    # Batch-norm statistics stay pretrained everywhere; the stem is frozen and the last block learns.
    assert torch.equal(backbone["bn1.running_mean"], pretrained["bn1.running_mean"])
    assert torch.equal(backbone["blocks.6.0.bn1.running_mean"], pretrained["blocks.6.0.bn1.running_mean"])
    assert torch.equal(backbone["conv_stem.weight"], pretrained["conv_stem.weight"])
    assert not torch.equal(backbone["blocks.6.0.conv_pw.weight"], pretrained["blocks.6.0.conv_pw.weight"])
