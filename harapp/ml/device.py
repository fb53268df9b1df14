"""Choosing the compute device and the mixed-precision context that suits it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from harapp.ml.errors import ConfigError


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(pref: str = "auto") -> torch.device:
    """Map 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps' to a device that exists on this machine."""
    pref = (pref or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"Device {pref!r} was requested but no CUDA GPU is available; use --device cpu.")
        return torch.device(pref)
    if pref == "mps":
        if not mps_available():
            raise ConfigError("Device 'mps' was requested but Apple MPS is not available; use --device cpu.")
        return torch.device("mps")
    raise ConfigError(f"Unknown device {pref!r}; use auto, cpu, cuda, cuda:N or mps.")


def describe_device(pref: str = "auto") -> str:
    device = resolve_device(pref)
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "MPS: Apple GPU"
    return "CPU"


def loader_workers(device: torch.device, requested: int | None = None) -> int:
    """Image-decoding processes for a DataLoader: a GPU outruns one Python thread decoding JPEGs many times over,
    while on the CPU the workers would only take cores from the model (and cost determinism nothing to skip)."""
    if requested is not None:
        return requested
    if device.type != "cuda":  # on Apple's MPS workers are spawned interpreters: more start-up than they save
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    # torchrun's processes on this machine share its cores.
    cores //= max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(0, min(8, cores - 1))


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA (no loss scaling needed, unlike fp16); full precision elsewhere."""
    return torch.bfloat16 if device.type == "cuda" else None


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError)


def free_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
