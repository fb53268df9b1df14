"""Device choice and the CUDA path (bf16 autocast), checked with mocks: this machine has no GPU."""

from __future__ import annotations

import pytest
import torch

from harapp.ml import device as D
from harapp.ml.errors import ConfigError


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert D.resolve_device("auto") == torch.device("cuda")
    assert D.describe_device("auto") == "CUDA: NVIDIA H100 80GB HBM3"
    assert D.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "mps_available", lambda: True)
    assert D.resolve_device("auto") == torch.device("mps")
    assert D.describe_device() == "MPS: Apple GPU"
    monkeypatch.setattr(D, "mps_available", lambda: False)
    assert D.resolve_device("auto") == torch.device("cpu")
    assert D.describe_device() == "CPU"


def test_requesting_a_missing_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(D, "mps_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU.*--device cpu"):
        D.resolve_device("cuda")
    with pytest.raises(ConfigError, match="MPS is not available"):
        D.resolve_device("mps")
    with pytest.raises(ConfigError, match="Unknown device"):
        D.resolve_device("tpu")


def test_cuda_uses_bf16_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    class FakeAutocast:
        def __init__(self, **kwargs: object) -> None:
            calls.append(kwargs)

        def __enter__(self) -> None:
            return None

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(D.torch, "autocast", FakeAutocast)
    with D.autocast(torch.device("cuda")):
        pass
    assert calls == [{"device_type": "cuda", "dtype": torch.bfloat16}]
    with D.autocast(torch.device("cpu")):
        pass
    assert len(calls) == 1  # full precision on CPU
    assert D.autocast_dtype(torch.device("mps")) is None


def test_oom_detection_and_cache_release(monkeypatch: pytest.MonkeyPatch) -> None:
    freed: list[bool] = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: freed.append(True))
    assert D.is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert not D.is_oom(RuntimeError("shape mismatch"))
    D.free_cache(torch.device("cpu"))
    assert freed == []
    D.free_cache(torch.device("cuda"))
    assert freed == [True]


def test_loader_workers_only_where_a_gpu_waits_for_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(D.os, "sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert D.loader_workers(torch.device("cpu")) == 0  # workers would take cores from the model
    assert D.loader_workers(torch.device("mps")) == 0
    assert D.loader_workers(torch.device("cuda")) == 8
    assert D.loader_workers(torch.device("cuda"), requested=2) == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # four torchrun ranks on this machine share its 16 cores
    assert D.loader_workers(torch.device("cuda")) == 3
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setattr(D.os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert D.loader_workers(torch.device("cuda")) == 0


def test_training_with_loader_workers_is_repeatable(tmp_path, shapes_snapshot, monkeypatch) -> None:  # noqa: ANN001
    import gc

    from torch.utils.data import DataLoader

    from harapp.ml import batches
    from harapp.ml.config import TrainConfig
    from harapp.ml.trainer import train

    started: list[int] = []

    class CountingLoader(DataLoader):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            started.append(self.num_workers)

    monkeypatch.setattr(batches, "DataLoader", CountingLoader)

    def run(workers: int) -> list:
        config = TrainConfig(
            model_kind="cnn-scratch", mode="scratch", epochs=2, batch_size=4, image_size=32, device="cpu",
            loader_workers=workers,
        )  # fmt: skip
        return list(train(config, shapes_snapshot, tmp_path / f"w{workers}.pt").history)

    # Workers only read and stack pixels; augmentations are drawn from one seeded stream in the training process,
    # so the worker count does not change the run.
    gc.disable()  # as under the GUI: the workers must switch their own collector back on
    try:
        with_workers = run(2)
        assert set(started) == {2}
        assert run(0) == with_workers
    finally:
        gc.enable()


def test_a_worker_process_collects_its_own_garbage() -> None:
    import gc

    from harapp.ml.data import init_worker

    gc.disable()
    try:
        init_worker(0)
        assert gc.isenabled()
    finally:
        gc.enable()
