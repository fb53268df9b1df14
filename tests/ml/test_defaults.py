"""Where a new job's settings come from: settings.json's preferences, else the registry's defaults."""

from __future__ import annotations

import logging

import pytest

from harapp.core.paths import Settings, save_settings
from harapp.ml.config import TrainConfig
from harapp.ml.defaults import preferred_choice, preferred_device, start_config
from harapp.ml.kinds import DEFAULT_KIND, KINDS


def test_without_settings_a_job_starts_from_the_registry() -> None:
    assert start_config() == TrainConfig.for_kind(DEFAULT_KIND)
    assert start_config("cnn-scratch") == TrainConfig.for_kind("cnn-scratch", "scratch")
    assert start_config("clip", "zero-shot", epochs=3).epochs == 3


def test_the_settings_choose_kind_mode_and_device() -> None:
    save_settings(Settings(default_model_kind="clip", default_mode="zero-shot", device="cpu"))
    assert preferred_choice() == ("clip", "zero-shot")
    config = start_config()
    assert (config.model_kind, config.mode, config.device) == ("clip", "zero-shot", "cpu")
    assert config.epochs == KINDS["clip"].defaults_for("zero-shot").epochs
    # A preferred mode the chosen kind lacks gives way to the kind's own default.
    assert start_config("resnet18").mode == "linear-probe"
    assert start_config("resnet18", device="cuda:1").device == "cuda:1"


def test_a_preferred_mode_applies_to_any_kind_that_has_it() -> None:
    save_settings(Settings(default_mode="fine-tune"))
    assert preferred_choice() == (DEFAULT_KIND, "fine-tune")
    assert start_config("resnet50").mode == "fine-tune"
    assert start_config("cnn-scratch").mode == "scratch"


@pytest.mark.parametrize(
    ("settings", "expected", "named"),
    [
        (Settings(default_model_kind="vgg16"), (DEFAULT_KIND, KINDS[DEFAULT_KIND].default_mode), "default_model_kind"),
        (Settings(default_mode="half-tune"), (DEFAULT_KIND, KINDS[DEFAULT_KIND].default_mode), "default_mode"),
    ],
)
def test_a_typo_in_the_settings_falls_back_and_says_which_key(
    settings: Settings, expected: tuple[str, str], named: str, caplog: pytest.LogCaptureFixture
) -> None:
    save_settings(settings)
    with caplog.at_level(logging.WARNING):
        assert preferred_choice() == expected
    assert named in caplog.text


def test_a_device_harapp_does_not_know_falls_back_to_auto(caplog: pytest.LogCaptureFixture) -> None:
    save_settings(Settings(device="gpu"))
    with caplog.at_level(logging.WARNING):
        assert preferred_device() == "auto"
    assert "device" in caplog.text and "'gpu'" in caplog.text
    save_settings(Settings(device=" CUDA:0 "))
    assert preferred_device() == "cuda:0"
