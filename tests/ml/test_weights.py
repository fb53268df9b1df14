"""Getting weights: offline failures are fast and say what to do; local files load safely."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from harapp.ml import clip_models
from harapp.ml import weights as W
from harapp.ml.config import TrainConfig
from harapp.ml.errors import WeightsUnavailableError
from harapp.ml.models import build_model


def test_missing_clip_weights_offline_fail_fast_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as info:
        clip_models.create_clip("ViT-B-32", "openai", None)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "ViT-B-32" in message and "openai" in message
    assert "connect to the internet" in message and "--weights PATH" in message
    assert "Weights file field of the Train panel" in message and "unset HF_HUB_OFFLINE" in message


def test_unreachable_hub_fails_fast_without_calling_open_clip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probed: list[str] = []

    def no_network(host: str, port: int = 443, timeout: float = 2.5) -> bool:
        probed.append(host)
        return False

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("open_clip would retry for ~45 s; it must not be called")

    monkeypatch.setattr(W, "host_reachable", no_network)
    monkeypatch.setattr(clip_models, "_create", must_not_run)
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="huggingface.co cannot be reached") as info:
        clip_models.create_clip("ViT-B-32", "laion2b_s34b_b79k", None)
    assert "HF_HUB_OFFLINE" not in str(info.value)  # not set, so not part of the way out
    assert probed == ["huggingface.co"]
    assert time.monotonic() - start < 5


def test_real_probe_times_out_quickly() -> None:
    start = time.monotonic()
    # 192.0.2.0/24 is reserved for documentation: nothing answers there.
    assert W.host_reachable("192.0.2.1", 443, timeout=0.5) is False
    assert time.monotonic() - start < 3


def test_unknown_tag_lists_known_ones() -> None:
    with pytest.raises(WeightsUnavailableError, match="no pretrained tag 'nope'.*openai"):
        clip_models.create_clip("ViT-B-32", "nope", None)


def test_build_clip_with_missing_weights_raises_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="ViT-B-32"):
        build_model(TrainConfig(model_kind="clip", mode="zero-shot"), ("a", "b"))


def test_resnet_imagenet_weights_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailableError, match="resnet18.*--weights PATH"):
        build_model(TrainConfig(model_kind="resnet18", mode="linear-probe", image_size=32), ("a", "b"))
    assert time.monotonic() - start < 5


def test_settings_file_is_the_offline_fallback(tiny_clip: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import open_clip

    from harapp.core.paths import Settings, save_settings

    torch.manual_seed(3)
    reference = open_clip.create_model(tiny_clip, pretrained=None)
    path = tmp_path / "tiny.bin"
    torch.save(reference.state_dict(), path)
    save_settings(Settings(clip_weights_file=str(path)))
    monkeypatch.setattr(open_clip, "get_pretrained_cfg", lambda name, tag: {"hf_hub": "org/tiny/"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, source = clip_models.create_clip(tiny_clip, "fake-tag", None)
    assert source == f"file:{path}"
    assert torch.equal(model.visual.conv1.weight, reference.visual.conv1.weight)


def test_local_clip_weights_file_loads_exactly(tiny_clip: str, tmp_path: Path) -> None:
    import open_clip

    torch.manual_seed(1)
    reference = open_clip.create_model(tiny_clip, pretrained=None)
    path = tmp_path / "tiny_clip.bin"
    # Wrapped and DataParallel-prefixed, as many training scripts save them.
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    cfg = TrainConfig(model_kind="clip", mode="zero-shot", clip_model=tiny_clip, weights_path=str(path))
    built = build_model(cfg, ("a", "b"))
    assert built.weights_source == f"file:{path}"
    assert torch.equal(built.model.backbone.conv1.weight, reference.visual.conv1.weight)


def test_weights_file_that_does_not_fit(tiny_clip: str, tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"foo.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsUnavailableError, match="does not fit"):
        clip_models.create_clip(tiny_clip, None, str(path))


def test_pickled_code_is_not_executed(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsUnavailableError, match="Cannot read weights file"):
        W.load_state_dict_file(path)


def test_weights_dir_follows_settings(tmp_path: Path) -> None:
    from harapp.core.paths import Settings, save_settings

    save_settings(Settings(weights_cache_dir=str(tmp_path / "w")))
    assert W.weights_dir() == tmp_path / "w"
    assert (tmp_path / "w").is_dir()


def test_network_probe_gives_up_on_a_hanging_name_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def slow_lookup(*args: object, **kwargs: object) -> None:
        time.sleep(30)  # a resolver that never answers
        # ...and then fails, as a lookup does: the abandoned thread ends quietly, in whichever test runs by then.
        raise OSError("name lookup timed out")

    monkeypatch.setattr(socket, "create_connection", slow_lookup)
    start = time.monotonic()
    assert W.host_reachable("huggingface.co", timeout=0.5) is False
    assert time.monotonic() - start < 2
