"""The Train form and `harapp train` start every kind and mode from the same TrainConfig."""

from __future__ import annotations

import pytest

from harapp.cli import build_parser
from harapp.cli.ml_commands import train_config
from harapp.core.paths import Settings, save_settings
from harapp.gui.train_form import TrainForm
from harapp.ml.config import TrainConfig
from harapp.ml.kinds import KINDS

PAIRS = [(kind.name, mode) for kind in KINDS.values() for mode in kind.modes]


def _cli(*options: str) -> TrainConfig:
    return train_config(build_parser().parse_args(["train", "p.harapp", *options]))


@pytest.fixture
def form(qtbot) -> TrainForm:  # noqa: ANN001 - pytest-qt fixture
    widget = TrainForm()
    qtbot.addWidget(widget)
    return widget


@pytest.mark.parametrize(("kind", "mode"), PAIRS)
def test_form_and_command_line_agree_for_each_kind_and_mode(form: TrainForm, kind: str, mode: str) -> None:
    form.set_choice(kind, mode)
    assert form.build_config() == _cli("--model", kind, "--mode", mode)


def test_form_and_command_line_agree_with_no_choice(form: TrainForm) -> None:
    assert form.build_config() == _cli() == TrainConfig.for_kind()


def test_both_follow_the_settings(qtbot) -> None:  # noqa: ANN001
    save_settings(Settings(default_model_kind="resnet18", default_mode="fine-tune", device="cpu"))
    form = TrainForm()
    qtbot.addWidget(form)
    config = _cli()
    assert (config.model_kind, config.mode, config.device) == ("resnet18", "fine-tune", "cpu")
    assert form.build_config() == config
    form.set_choice("cnn-scratch")
    assert form.build_config() == _cli("--model", "cnn-scratch")
