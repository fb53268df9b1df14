"""CLIP weights a user brought: checked once, stored in the weights cache, found again by (model, pretrained tag).

`register_clip_file` reads a file in any format weights_formats knows, checks it against the open_clip
architecture (clip_fit), decides which pretrained tag it is and so whether it needs QuickGELU, and stores it;
`create_clip` then finds it for that (model, tag) before it tries the model hub, so training works offline.

Storage: one file per (model, tag), `<weights cache>/clip/<model>@<tag>.safetensors`, holding the state dict in
open_clip's layout (each tensor in its own dtype: OpenAI's half-precision weights stay half the size), with what
it is in the safetensors header: model, tag, QuickGELU or not, the file it came from, its SHA-256. Why this way:
- safetensors, whatever the source format: loading it runs no code (no pickle), it is memory-mapped and fast,
  and the TorchScript path (torch.jit.load) runs once, at add time, not at every training run;
- a copy, not a link: a cleaned Downloads folder or Hugging Face cache must not break training later;
- the header is the index: there is no separate list to fall out of step with the files, so a registration
  is exactly one rename, and a folder copied to another machine keeps working;
- written to a temp file beside it, flushed to disk and renamed: a crash or a full disk leaves the old file
  or none, never half of one under the real name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from harapp.ml import weights as W
from harapp.ml.clip_fit import check_fits, compare, fitting_models
from harapp.ml.config import TrainConfig
from harapp.ml.errors import ConfigError, WeightsCacheError, WeightsFileError, WeightsUnavailableError
from harapp.ml.weights_formats import TORCHSCRIPT, WeightsFile, read_weights_file

FORMAT = "harapp-clip-weights"
VERSION = "1"
SUFFIX = ".safetensors"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
DEFAULT_ARCHITECTURE = TrainConfig.clip_model
DEFAULT_TAG = TrainConfig.clip_pretrained
OPENAI_TAG = "openai"
_HEADER_SLACK = 1 << 20  # the safetensors header and the file system's own needs, beyond the tensors


@dataclass(frozen=True)
class RegisteredWeights:
    model: str
    """The open_clip architecture, e.g. ViT-B-32."""
    pretrained: str
    """open_clip's pretrained tag, e.g. openai."""
    quick_gelu: bool
    """The architecture variant the weights were trained with (OpenAI's: QuickGELU)."""
    path: Path
    source_file: str
    source_format: str
    sha256: str
    """Of the file as the user gave it, so it can be compared with a download's published hash."""
    added_at: str
    parameters: int
    size_bytes: int
    problem: str = ""
    """Non-empty when the stored file cannot be read: it needs removing (and adding again)."""

    @property
    def source(self) -> str:
        """The weights' identity in models and embedding caches: another file under the same tag is another key."""
        return f"registered:{self.model}:{self.pretrained}:{self.sha256[:12]}"

    @property
    def variant(self) -> str:
        return "QuickGELU" if self.quick_gelu else "GELU"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["variant"] = self.variant
        return d


@dataclass(frozen=True)
class Registration:
    entry: RegisteredWeights
    replaced: bool
    """A file was registered for the same model and tag before, and this one took its place."""


def registry_dir(create: bool = False) -> Path:
    """The folder of registered CLIP weights in the weights cache; a WeightsCacheError when it cannot be made."""
    try:
        folder = W.weights_dir() / "clip"
        if create:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_error(exc, Path(exc.filename or "the weights cache"), "create the weights cache folder") from exc
    return folder


def _file_name(model: str, tag: str) -> str:
    for part in (model, tag):
        if not _SAFE_NAME.fullmatch(part):
            raise ConfigError(f"{part!r} cannot name registered weights: use letters, digits, '.', '_', '-' or '+'.")
    return f"{model}@{tag}{SUFFIX}"


def _clean_tag(tag: str) -> str:
    """open_clip matches tags case-insensitively with '-' and '_' alike (its pretrained._clean_tag)."""
    return tag.lower().replace("-", "_")


def _read_entry(path: Path) -> RegisteredWeights:
    from safetensors import safe_open

    stem_model, _, stem_tag = path.name[: -len(SUFFIX)].partition("@")
    try:
        with safe_open(str(path), framework="pt") as handle:  # reads the header only
            meta = handle.metadata() or {}
        size = path.stat().st_size
        if meta.get("format") != FORMAT:
            raise ValueError("its header does not say it was registered by harapp")
        return RegisteredWeights(
            model=meta["model"],
            pretrained=meta["pretrained"],
            quick_gelu=meta["quick_gelu"] == "true",
            path=path,
            source_file=meta.get("source_file", ""),
            source_format=meta.get("source_format", ""),
            sha256=meta.get("sha256", ""),
            added_at=meta.get("added_at", ""),
            parameters=int(meta.get("parameters", "0")),
            size_bytes=size,
        )
    except Exception as exc:  # SafetensorError, OSError, KeyError, ValueError: all mean "damaged"
        return RegisteredWeights(
            stem_model, stem_tag, False, path, "", "", "", "", 0, 0, problem=f"cannot be read ({exc})"
        )


def list_registered() -> list[RegisteredWeights]:
    folder = registry_dir()
    if not folder.is_dir():
        return []
    return [_read_entry(p) for p in sorted(folder.glob(f"*@*{SUFFIX}")) if not p.name.startswith(".")]


def find_registered(model: str, tag: str) -> RegisteredWeights | None:
    """The weights registered for (model, tag), else None; WeightsUnavailableError if they are there but damaged."""
    for entry in list_registered():
        if entry.model == model and _clean_tag(entry.pretrained) == _clean_tag(tag):
            if entry.problem:
                raise WeightsUnavailableError(
                    f"The weights registered for {model} ({tag}) at {entry.path} {entry.problem}. Run "
                    f"`harapp weights remove {model} {entry.pretrained}` and add the file again."
                )
            return entry
    return None


def read_registered_state(entry: RegisteredWeights) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(entry.path), device="cpu")
    except Exception as exc:  # SafetensorError or OSError: the file changed since it was registered
        raise WeightsUnavailableError(
            f"The weights registered for {entry.model} ({entry.pretrained}) at {entry.path} cannot be read ({exc}). "
            f"Run `harapp weights remove {entry.model} {entry.pretrained}` and add the file again."
        ) from exc


def remove_registered(model: str, tag: str) -> RegisteredWeights:
    entries = [e for e in list_registered() if e.model == model and _clean_tag(e.pretrained) == _clean_tag(tag)]
    if not entries:
        known = ", ".join(f"{e.model} {e.pretrained}" for e in list_registered()) or "none"
        raise ConfigError(f"No CLIP weights are registered for {model} ({tag}). Registered: {known}.")
    for entry in entries:
        try:
            entry.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise _cache_error(exc, entry.path.parent, f"remove {entry.path.name}") from exc
    return entries[0]


# -- adding a file --------------------------------------------------------------------------------------------


def register_clip_file(path: Path | str, model: str | None = None, pretrained: str | None = None) -> Registration:
    """Check a CLIP weights file and store it for (model, tag); clear errors for every way it can fail."""
    import open_clip

    source = Path(path)
    if model:  # arguments first: reading and checking a large file takes a while
        _check_model_name(model)
        if pretrained:
            _known_tag(model, pretrained)
    weights = read_weights_file(source)
    name = _architecture(weights, model, pretrained)
    state = check_fits(name, weights.state, source)
    tag = _pretrained_tag(name, pretrained, weights)

    quick = bool(open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "model": name,
        "pretrained": tag,
        "quick_gelu": "true" if quick else "false",
        "source_file": str(source.absolute()),
        "source_format": weights.format,
        "sha256": _sha256(source),
        "added_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parameters": str(weights.parameters),
    }
    folder = registry_dir(create=True)
    final = folder / _file_name(name, tag)
    replaced = final.exists()
    _write(final, _storable(state), metadata, source)
    return Registration(_read_entry(final), replaced)


def _architecture(weights: WeightsFile, model: str | None, pretrained: str | None) -> str:
    import open_clip

    if model:
        return model
    fits = fitting_models(weights.state)
    if pretrained and len(fits) > 1:  # a tag open_clip knows for only one of them settles it
        known = [n for n in fits if open_clip.get_pretrained_cfg(n, pretrained)]
        fits = known or fits
    if len(fits) == 1:
        return fits[0]
    if not fits:
        # Said against the default architecture: the likeliest intent, and a concrete list of differences.
        _, difference = compare(DEFAULT_ARCHITECTURE, weights.state, weights.path)
        if difference is None:
            return DEFAULT_ARCHITECTURE
        raise WeightsFileError(
            f"Weights file {weights.path} fits no open_clip model. Against the default, "
            f"{DEFAULT_ARCHITECTURE}: {difference.describe()}."
        )
    raise WeightsFileError(
        f"Weights file {weights.path} fits several open_clip models: {', '.join(fits)}. Say which with --model NAME."
    )


def _check_model_name(model: str) -> None:
    import open_clip

    if model not in open_clip.list_models():
        raise ConfigError(f"open_clip has no model named {model!r} (e.g. ViT-B-32, ViT-B-16, RN50).")


def _known_tag(name: str, given: str) -> str:
    """open_clip's spelling of a tag it knows for the model; the tag decides QuickGELU, so it must be a known one."""
    import open_clip

    tags = list(open_clip.list_pretrained_tags_by_model(name))
    for tag in tags:
        if _clean_tag(tag) == _clean_tag(given):
            return str(tag)
    listed = ", ".join(tags) if tags else "none"
    raise ConfigError(
        f"open_clip knows no pretrained tag {given!r} for {name} (known: {listed}). The tag says whose weights "
        "these are, and so whether they need QuickGELU; a file of your own can still be used with --weights FILE."
    )


def _pretrained_tag(name: str, given: str | None, weights: WeightsFile) -> str:
    """The tag given, else the one the file's name or Hugging Face cache folder shows, else OpenAI's for its format."""
    import open_clip

    if given:
        return _known_tag(name, given)
    tags = list(open_clip.list_pretrained_tags_by_model(name))
    by_source = [t for t in tags if _tag_matches_file(open_clip.get_pretrained_cfg(name, t), weights.path)]
    if len(by_source) == 1:
        return str(by_source[0])
    if weights.format == TORCHSCRIPT and OPENAI_TAG in tags:
        return OPENAI_TAG  # OpenAI publishes its CLIP weights as TorchScript archives; nobody else does
    if not tags:
        raise ConfigError(
            f"open_clip knows no pretrained weights for {name}, so they cannot be registered; use the file directly "
            "with --weights FILE (or the Weights file field of the Train panel)."
        )
    raise ConfigError(
        f"Which pretrained weights does {weights.path} hold? Say it with --pretrained TAG; open_clip knows these for "
        f"{name}: {', '.join(tags)} (harapp trains with {DEFAULT_TAG!r} unless told otherwise)."
    )


def _tag_matches_file(cfg: dict[str, str], path: Path) -> bool:
    """The file is the one this tag downloads: the same file name as its URL, or inside its Hugging Face repo."""
    url_name = os.path.basename(cfg.get("url", "").split("?")[0])
    if url_name and url_name == path.name:
        return True
    repo = os.path.split(cfg.get("hf_hub", ""))[0]
    return bool(repo) and f"models--{repo.replace('/', '--')}" in path.absolute().parts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _storable(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors that share no memory, as safetensors requires (tied weights get their own copy)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in state.items():
        t = tensor.detach().cpu().contiguous()
        pointer = t.untyped_storage().data_ptr()
        if pointer in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def _write(final: Path, state: dict[str, torch.Tensor], metadata: dict[str, str], source: Path) -> None:
    from safetensors.torch import save_file

    folder = final.parent
    needed = sum(t.numel() * t.element_size() for t in state.values()) + _HEADER_SLACK
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise _cache_error(exc, folder, f"register {source}") from exc
    if free < needed:
        raise WeightsCacheError(
            f"Cannot register {source}: the weights cache {folder} has {_mb(free)} free but the weights need "
            f"{_mb(needed)}. Free some space, or move the cache (weights_cache_dir in settings.json, or "
            "HARAPP_CACHE_DIR)."
        )
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        save_file(state, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        tmp = ""
    except Exception as exc:  # OSError, or safetensors' SafetensorError carrying the OS error in its text
        code = exc.errno if isinstance(exc, OSError) else _os_error_in(str(exc))
        cause = OSError(code, os.strerror(code) if code else str(exc))
        raise _cache_error(cause, folder, f"register {source}") from exc
    finally:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _os_error_in(message: str) -> int:
    """The errno in a Rust I/O error's text ('... (os error 28)'), as safetensors reports them; 0 if none."""
    found = re.search(r"os error (\d+)", message)
    return int(found.group(1)) if found else 0


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def _cache_error(exc: OSError, folder: Path, doing: str) -> WeightsCacheError:
    move = "move the cache (weights_cache_dir in settings.json, or HARAPP_CACHE_DIR)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WeightsCacheError(f"Cannot {doing}: the weights cache {folder} is full. Free some space, or {move}.")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return WeightsCacheError(
            f"Cannot {doing}: the weights cache {folder} is read-only or not writable by you. Fix its permissions, "
            f"or {move}."
        )
    reason = exc.strerror or str(exc)
    return WeightsCacheError(f"Cannot {doing}: writing to the weights cache {folder} failed ({reason}); {move}.")
