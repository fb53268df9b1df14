"""Reading a weights file in the formats the model hubs serve, without running code stored in it.

- safetensors (`open_clip_model.safetensors`): a JSON header and raw tensors, no code by design.
- a torch state dict (`open_clip_pytorch_model.bin`, `.pt`, `.pth`; torch.save's zip or legacy format): loaded
  with weights_only=True, which refuses any pickled object that is not a tensor or a plain container.
- a TorchScript archive (OpenAI's `ViT-B-32.pt`): read with torch.jit.load, as open_clip's load_openai_model
  does. TorchScript's own unpickler builds only TorchScript classes and tensors, never Python objects; still,
  every pickle in the archive is checked first to name nothing else, so a crafted archive is refused before
  torch sees it. open_clip's loaders are not called on the file itself: they fall back to torch.load without
  weights_only when torch.jit.load fails.

The file's format is told by its first bytes, not its name: downloads get renamed, and a login page saved as
`.bin` should be called an HTML page, not a corrupt checkpoint.
"""

from __future__ import annotations

import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harapp.ml.errors import WeightsFileError
from harapp.ml.weights import state_dict_from

SAFETENSORS = "safetensors file"
TORCH_STATE_DICT = "torch state dict"
TORCHSCRIPT = "OpenAI TorchScript archive"

WHAT_HARAPP_READS = (
    "harapp reads open_clip state dicts (.bin, .pt, .pth), .safetensors files and OpenAI's TorchScript .pt files"
)
OPENAI_CONFIG_ENTRIES = ("input_resolution", "context_length", "vocab_size")
"""Entries of OpenAI's state dicts that are configuration, not weights; open_clip drops them the same way."""


@dataclass(frozen=True)
class WeightsFile:
    path: Path
    format: str
    """How it was stored: SAFETENSORS, TORCH_STATE_DICT or TORCHSCRIPT."""
    state: dict[str, torch.Tensor]

    @property
    def parameters(self) -> int:
        return sum(t.numel() for t in self.state.values())


def read_weights_file(path: Path | str) -> WeightsFile:
    """The state dict in a weights file of any supported format; WeightsFileError naming the file and the cause."""
    path = Path(path)
    if not path.exists():
        raise WeightsFileError(f"Weights file {path} does not exist.")
    if not path.is_file():
        raise WeightsFileError(f"{path} is a folder, not a weights file.")
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise WeightsFileError(f"Cannot read weights file {path}: {exc.strerror or exc}.") from exc
    if size == 0:
        raise WeightsFileError(f"Weights file {path} is empty (0 bytes): an interrupted download?")
    if head.startswith(b"PK\x03\x04"):
        return _read_zip(path)
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:  # a pickle's PROTO opcode: torch's legacy format
        return WeightsFile(path, TORCH_STATE_DICT, _torch_load(path))
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 8 else 0
    if head[8:9] == b"{" and header_len >= 2:
        if 8 + header_len > size:
            raise WeightsFileError(f"Weights file {path} is truncated: its safetensors header alone needs more bytes.")
        return WeightsFile(path, SAFETENSORS, _safetensors_load(path))
    raise WeightsFileError(f"{path} is not a weights file: it {_looks_like(head)}. {WHAT_HARAPP_READS}.")


def _looks_like(head: bytes) -> str:
    signatures = {
        b"\xff\xd8\xff": "is a JPEG image",
        b"\x89PNG": "is a PNG image",
        b"GIF8": "is a GIF image",
        b"%PDF": "is a PDF document",
        b"\x1f\x8b": "is gzip-compressed (unpack it first)",
        b"\x93NUMPY": "is a NumPy array file",
    }
    for magic, what in signatures.items():
        if head.startswith(magic):
            return what
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "is an HTML page (a failed download or a login page?)"
    text = head.decode("utf-8", errors="replace")
    # A cut multi-byte character at the end of the sample is fine; binary data decodes to many replacements.
    return "is a text file" if b"\x00" not in head and text.count("\ufffd") <= 1 else "has an unknown format"


def _torch_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, OSError, EOFError...)
        message = str(exc)
        refused = re.search(r"GLOBAL ([\w.]+) was not an allowed global", message)
        if refused:
            raise WeightsFileError(
                f"{path} was not loaded: it is a pickle that would call {refused.group(1)} while loading, which "
                "weights never need (it may be harmful). harapp loads only tensors from pickled files."
            ) from exc
        detail = re.search(r"WeightsUnpickler error: (.*)", message)
        raise WeightsFileError(
            f"Weights file {path} is damaged or truncated (an interrupted download?), or holds more than tensors: "
            f"{_first_line(detail.group(1) if detail else message)}"
        ) from exc
    return state_dict_from(obj, path)


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:  # SafetensorError, or OSError for an unreadable file
        raise WeightsFileError(
            f"Weights file {path} is a damaged or truncated safetensors file: {_first_line(str(exc))}"
        ) from exc
    return state_dict_from(state, path)


def _read_zip(path: Path) -> WeightsFile:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pickles = {n: archive.read(n) for n in names if n.endswith((".pkl", ".debug_pkl"))}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise WeightsFileError(
            f"Weights file {path} is damaged or truncated (an interrupted download?): its archive cannot be read."
        ) from exc
    if any(n.endswith("constants.pkl") for n in names):
        return WeightsFile(path, TORCHSCRIPT, _torchscript_load(path, pickles))
    if not any(n.endswith("data.pkl") for n in names):
        raise WeightsFileError(f"{path} is a zip archive but not a weights file. {WHAT_HARAPP_READS}.")
    return WeightsFile(path, TORCH_STATE_DICT, _torch_load(path))


def _allowed_global(module: str, name: str) -> bool:
    """What torch writes into a TorchScript archive: its classes, tensor storages and tensor rebuilders."""
    return (
        module == "__torch__"
        or module.startswith("__torch__.")
        or (module == "torch" and name.endswith("Storage"))
        or (module == "torch._utils" and name.startswith("_rebuild_"))
        or module == "torch.jit._pickle"
        or (module == "collections" and name == "OrderedDict")
    )


def _foreign_globals(data: bytes) -> list[str]:
    """The Python objects a pickle would look up, beyond what a TorchScript archive may hold."""
    found: list[str] = []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            if not _allowed_global(module, name):
                found.append(f"{module}.{name}")
        elif opcode.name == "STACK_GLOBAL":  # protocol 4+: torch never writes it into an archive
            found.append("an object named at load time")
    return found


def _torchscript_load(path: Path, pickles: dict[str, bytes]) -> dict[str, torch.Tensor]:
    for name, data in pickles.items():
        try:
            foreign = _foreign_globals(data)
        except (ValueError, EOFError) as exc:  # pickletools reads only; a damaged pickle ends here
            raise WeightsFileError(f"Weights file {path} is damaged: {name} in it is not a valid pickle.") from exc
        if foreign:
            raise WeightsFileError(
                f"{path} was not loaded: it looks like a TorchScript archive, but {name} in it would call "
                f"{', '.join(sorted(set(foreign)))}, which weights never need (it may be harmful)."
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, but it is OpenAI's format
            module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
        state: dict[str, Any] = dict(module.state_dict())
    except Exception as exc:  # RuntimeError and others from TorchScript's C++ loader
        raise WeightsFileError(
            f"Weights file {path} is a damaged TorchScript archive: {_first_line(str(exc))}"
        ) from exc
    for key in OPENAI_CONFIG_ENTRIES:
        state.pop(key, None)
    return state_dict_from(state, path)


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return line if len(line) <= 200 else line[:197] + "..."
