"""`harapp train / predict / eval` through the real entry point."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from harapp.cli import main
from tests.ml.conftest import draw_shapes, project_from_items

TRAIN = ["--model", "cnn-scratch", "--image-size", "32", "--batch-size", "8", "--device", "cpu", "--no-augment"]


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    root = tmp_path / "imgs"
    project = project_from_items(tmp_path / "p.harapp", draw_shapes(root, 40), root)
    project.close()
    return tmp_path / "p.harapp"


def test_train_predict_eval(project_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "m.pt"
    assert main(["train", str(project_path), *TRAIN, "--epochs", "2", "--out", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert "accuracy" in out and "confusion" in out and str(ckpt) in out
    assert "training" in err  # the tqdm bar went to stderr
    assert "decoding" in err and any((tmp_path / "p.cache").glob("decoded-32-*.u8"))  # beside the project
    assert ckpt.is_file()

    assert main(["predict", str(ckpt), str(tmp_path / "imgs"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 40
    assert set(lines[0]["probabilities"]) == {"walking", "running", "sitting", "standing"}

    assert main(["predict", str(ckpt), str(tmp_path / "imgs" / "shape_0000.png")]) == 0
    table = capsys.readouterr().out
    assert "predicted" in table and "shape_0000.png" in table

    assert main(["eval", str(ckpt), str(project_path)]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "confusion" in out and "macro-F1" in out


def test_training_without_the_decoded_cache(project_path: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", str(project_path), *TRAIN, "--epochs", "1", "--no-decoded-cache"]) == 0
    assert "decoding" not in capsys.readouterr().err and not (tmp_path / "p.cache").exists()


def test_predict_reports_bad_files_and_continues(project_path: Path, tmp_path: Path, capsys) -> None:
    ckpt = tmp_path / "m.pt"
    assert main(["train", str(project_path), *TRAIN, "--epochs", "1", "--out", str(ckpt)]) == 0
    bad = tmp_path / "broken.jpg"
    bad.write_text("nope")
    capsys.readouterr()
    code = main(["predict", str(ckpt), str(bad), str(tmp_path / "imgs" / "shape_0001.png")])
    out, err = capsys.readouterr()
    assert code == 1 and "broken.jpg" in err and "shape_0001.png" in out


def test_ctrl_c_cancels_cleanly(project_path: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from harapp.cli import ml_commands

    original = ml_commands.ProgressBar.__call__

    sent = []

    def interrupt_in_epoch_3(self, p) -> None:  # type: ignore[no-untyped-def]
        original(self, p)
        if p.phase == "training" and p.epoch >= 3 and not sent:
            sent.append(p.epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(ml_commands.ProgressBar, "__call__", interrupt_in_epoch_3)
    ckpt = tmp_path / "m.pt"
    args = ["train", str(project_path), *TRAIN, "--epochs", "8", "--out", str(ckpt)]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "cancelled" in err and str(ckpt) in err
    assert ckpt.is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_eval_refuses_mismatched_classes(project_path: Path, tmp_path: Path, capsys) -> None:
    from harapp.core.store import Project

    ckpt = tmp_path / "m.pt"
    assert main(["train", str(project_path), *TRAIN, "--epochs", "1", "--out", str(ckpt)]) == 0
    with Project.open(project_path) as project:
        project.add_class("jumping")
    capsys.readouterr()
    assert main(["eval", str(ckpt), str(project_path)]) == 1
    assert "jumping" in capsys.readouterr().err


def test_zero_shot_prompts_from_the_command_line(
    project_path: Path, tmp_path: Path, tiny_clip: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from harapp.ml.checkpoint import load_checkpoint

    ckpt = tmp_path / "zs.pt"
    args = ["train", str(project_path), "--model", "clip", "--mode", "zero-shot", "--clip-model", tiny_clip]
    args += ["--no-pretrained", "--device", "cpu", "--image-size", "32", "--out", str(ckpt)]
    assert main([*args, "--prompt", "a photo of a person {}.", "--prompt", "someone {}"]) == 0
    assert load_checkpoint(ckpt).config.prompts == ("a photo of a person {}.", "someone {}")
    assert main([*args, "--prompt", "no placeholder"]) != 0
    assert "must contain '{}'" in capsys.readouterr().err
