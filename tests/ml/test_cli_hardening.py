"""Bad input to the ML commands (issue 11, bad input 5, 8, 9; issue 10 CLI): checkpoints that are not
harapp's or are damaged, `eval` given a project, training with photos missing, leftovers of killed runs,
and a latency per image in `predict --json`."""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from harapp.cli import main
from harapp.core.leftovers import clean_stale_temporaries, unregistered_checkpoints
from harapp.core.paths import models_dir_for
from harapp.core.store import Project
from harapp.core.store import health as store_health
from harapp.ml import checkpoint as C
from harapp.ml.predictor import Predictor
from tests.ml.conftest import draw_shapes, project_from_items

TRAIN = ["--model", "cnn-scratch", "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--no-augment"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A project of 40 labelled shapes and a checkpoint trained on it; (project, checkpoint)."""
    folder = tmp_path_factory.mktemp("trained")
    root = folder / "imgs"
    project = project_from_items(folder / "p.harapp", draw_shapes(root, 40), root)
    project.close()
    ckpt = folder / "m.pt"
    assert main(["train", str(folder / "p.harapp"), *TRAIN, "--epochs", "1", "--out", str(ckpt)]) == 0
    return folder / "p.harapp", ckpt


def _payload(ckpt: Path) -> dict:
    return torch.load(ckpt, weights_only=True)


def _resave(payload: dict, path: Path) -> Path:
    torch.save(payload, path)
    return path


class _Thing:
    """A Python object inside a pickle: a checkpoint never holds one, and loading one could run code."""


def _bad_files(ckpt: Path, project: Path, folder: Path) -> dict[str, tuple[Path, str]]:
    """Kind of bad file -> (file, what the message must say)."""
    raw = ckpt.read_bytes()
    (folder / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (folder / "text.pt").write_text("these are my notes, not weights\n")
    (folder / "empty.pt").write_bytes(b"")
    _resave({"weight": torch.zeros(3)}, folder / "state-dict.pt")
    payload = _payload(ckpt)
    _resave({k: v for k, v in payload.items() if k != "class_names"}, folder / "no-classes.pt")
    _resave({**payload, "head_state": "nope"}, folder / "bad-head.pt")
    _resave({**payload, "config": [1, 2]}, folder / "bad-config.pt")
    with (folder / "pickle.pt").open("wb") as handle:
        pickle.dump({"format": "harapp-checkpoint", "thing": _Thing()}, handle)
    buffer = io.BytesIO()
    torch.save({"format": "harapp-checkpoint", "thing": _Thing()}, buffer)
    (folder / "objects.pt").write_bytes(buffer.getvalue())
    flipped = bytearray(raw)
    with zipfile.ZipFile(ckpt) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    local = info.header_offset  # the local header's own name and extra lengths say where the data starts
    data = (
        local
        + 30
        + int.from_bytes(raw[local + 26 : local + 28], "little")
        + int.from_bytes(raw[local + 28 : local + 30], "little")
    )
    flipped[data + info.compress_size // 2] ^= 0xFF  # one bit of the weights
    (folder / "bit-flip.pt").write_bytes(bytes(flipped))
    return {
        "truncated": (folder / "truncated.pt", "damaged"),
        "text": (folder / "text.pt", "not a harapp checkpoint"),
        "empty": (folder / "empty.pt", "not a harapp checkpoint"),
        "state-dict": (folder / "state-dict.pt", "not a harapp checkpoint"),
        "missing-field": (folder / "no-classes.pt", "damaged"),
        "bad-head": (folder / "bad-head.pt", "damaged"),
        "bad-config": (folder / "bad-config.pt", "damaged"),
        "plain-pickle": (folder / "pickle.pt", "not a harapp checkpoint"),
        "python-objects": (folder / "objects.pt", "not a harapp checkpoint"),
        "bit-flip": (folder / "bit-flip.pt", "damaged"),
        "project": (project, "it is a project file"),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_checkpoints_are_named_for_what_they_are(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, ckpt = trained
    image = draw_shapes(tmp_path / "one", 1)[0].path
    for kind, (path, says) in _bad_files(ckpt, project, tmp_path).items():
        with pytest.raises(C.CheckpointError) as info:
            Predictor.from_checkpoint(path, device="cpu")
        assert str(path) in str(info.value) and says in str(info.value), (kind, str(info.value))
        assert "weights_only" not in str(info.value) and "file an issue" not in str(info.value), kind
        for args in (["predict", str(path), str(image)], ["eval", str(path), str(project)]):
            assert main(args) == 1, (kind, args)
            err = capsys.readouterr().err
            assert says in err and "Traceback" not in err, (kind, args[0], err)


def test_weights_that_do_not_fit_the_model(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, ckpt = trained
    payload = _payload(ckpt)
    head = {k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) if v.dim() else v for k, v in payload["head_state"].items()}
    bad = _resave({**payload, "head_state": head}, tmp_path / "misfit.pt")
    with pytest.raises(C.CheckpointError, match=r"damaged: its weights do not fit a cnn-scratch model"):
        Predictor.from_checkpoint(bad, device="cpu")


def test_eval_with_its_arguments_swapped(trained: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    project, ckpt = trained
    assert main(["eval", str(project), str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert "is not a harapp checkpoint: it is a project file (.harapp)" in err
    assert "takes the checkpoint first, then the project" in err


def test_training_leaves_missing_photos_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "imgs"
    items = draw_shapes(root, 40)
    project_from_items(tmp_path / "p.harapp", items, root).close()
    for item in items[:5]:
        item.path.unlink()
    ckpt = tmp_path / "m.pt"
    assert main(["train", str(tmp_path / "p.harapp"), *TRAIN, "--epochs", "1", "--out", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert "5 of 40 photos are missing on disk" in err and "training without them" in err
    assert "on 35 labelled images" in err
    for item in items[5:]:
        item.path.unlink()
    assert main(["train", str(tmp_path / "p.harapp"), *TRAIN, "--epochs", "1", "--out", str(ckpt)]) == 1
    assert "Nothing to train on: 40 of 40 photos are missing on disk" in capsys.readouterr().err


def test_training_a_read_only_project_is_refused_up_front(
    trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project, _ = trained
    monkeypatch.setattr(store_health, "why_read_only", lambda path: f"its folder {path.parent} is read-only")
    assert main(["train", str(project), *TRAIN, "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "cannot train: its folder" in err and "read-only" in err


def test_predict_json_gives_each_image_its_own_latency(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, ckpt = trained
    small = tmp_path / "small.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(small)
    large = tmp_path / "large.bmp"
    Image.effect_noise((2400, 1600), 60).convert("RGB").save(large)  # quick to write, reading 11 MB takes a while
    assert main(["predict", str(ckpt), str(small), str(large), "--json"]) == 0
    rows = {Path(r["source"]).name: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["large.bmp"]["latency_ms"] > rows["small.png"]["latency_ms"]


# -- leftovers of killed runs ----------------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_killed_runs_leftovers_are_tidied(trained: tuple[Path, Path], tmp_path: Path) -> None:
    project_path, ckpt = trained
    path = tmp_path / "p.harapp"
    path.write_bytes(project_path.read_bytes())
    models = models_dir_for(path)
    models.mkdir()
    stale = models / ".resnet18-fine-tune-20240101-000000-abc123.pt.k3j4h5.tmp"
    fresh = models / ".resnet18-fine-tune-20240102-000000-def456.pt.q9w8e7.tmp"
    for leftover in (stale, fresh):
        leftover.write_bytes(b"half a checkpoint")
    _age(stale, 3600)
    (models / "notes.txt.tmp").write_bytes(b"not ours")
    _age(models / "notes.txt.tmp", 3600)
    finished = models / "cnn-scratch-scratch-finished.pt"
    finished.write_bytes(ckpt.read_bytes())
    payload = _payload(ckpt)
    interrupted = _resave(
        {**payload, "complete": False, "metrics": None, "metrics_split": "val",
         "extra": {"epoch": 3, "val_accuracy": 0.5, "writer_pid": 2**22 + 12345, "writer_host": os.uname().nodename}},
        models / "cnn-scratch-scratch-killed.pt",
    )  # fmt: skip
    running = _resave(
        {**payload, "complete": False, "metrics": None,
         "extra": {"epoch": 1, "writer_pid": os.getpid(), "writer_host": os.uname().nodename}},
        models / "cnn-scratch-scratch-running.pt",
    )  # fmt: skip
    (models / "foreign.pt").write_bytes(b"not a checkpoint")

    with Project.open(path) as project:
        assert {p.name for p in unregistered_checkpoints(project)} == {
            finished.name,
            interrupted.name,
            running.name,
            "foreign.pt",
        }
        removed, registered = C.adopt_leftovers(project)
        assert removed == [stale] and fresh.exists() and (models / "notes.txt.tmp").exists()
        assert len(registered) == 2
        by_path = {m.path.name: m for m in project.models() if m.id in registered}
        assert set(by_path) == {finished.name, interrupted.name}
        assert by_path[finished.name].name.endswith("(recovered)") and by_path[finished.name].metrics["accuracy"] >= 0
        assert by_path[interrupted.name].name.endswith("(interrupted at epoch 3)")
        assert by_path[interrupted.name].metrics["val_accuracy"] == 0.5
        # Registered once: a second pass finds only the files it must leave alone.
        assert C.adopt_leftovers(project) == ([], [])
        assert {p.name for p in unregistered_checkpoints(project)} == {running.name, "foreign.pt"}
    assert clean_stale_temporaries(path, older_than_s=0) == [fresh]


def test_train_tidies_up_before_it_starts(trained: tuple[Path, Path], tmp_path: Path, capsys) -> None:  # noqa: ANN001
    project_path, ckpt = trained
    path = tmp_path / "p.harapp"
    path.write_bytes(project_path.read_bytes())
    models = models_dir_for(path)
    models.mkdir()
    (models / "old-run.pt").write_bytes(ckpt.read_bytes())
    stale = models / ".old-run-2.pt.abcdef.tmp"
    stale.write_bytes(b"x")
    _age(stale, 3600)
    assert main(["train", str(path), *TRAIN, "--epochs", "1"]) == 0
    assert "1 stale temporary files deleted, 1 unregistered checkpoints registered" in capsys.readouterr().err
    with Project.open(path) as project:
        assert len(project.models()) == 3  # the trained fixture's, the adopted one and this run's
    assert not stale.exists()
