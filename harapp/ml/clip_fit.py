"""Whether a state dict fits an open_clip architecture, tensor by tensor and shape by shape, and which ones it fits.

The architectures are built on torch's meta device: every parameter has its shape and no memory, so checking a
file against ViT-B-32 costs a tenth of a second and no 600 MB. QuickGELU adds no parameter, so the GELU and
QuickGELU variants of an architecture take the same files; which one a file needs is the pretrained tag's fact.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harapp.ml.errors import WeightsFileError

Shapes = Mapping[str, tuple[int, ...]]
QUICKGELU_SUFFIX = "-quickgelu"
_SHOWN = 3  # tensors named in a message, per kind of difference


class _NoWeightsNotice(logging.Filter):
    """open_clip warns that no pretrained weights were loaded: here that is the point."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    notice = _NoWeightsNotice()
    root = logging.getLogger()  # open_clip logs through the root logger
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)


@functools.lru_cache(maxsize=16)
def meta_model(name: str) -> Any:
    """The open_clip model `name` with shapes and no storage; open_clip errors pass through."""
    import open_clip

    with _quiet_open_clip():
        return open_clip.create_model(name, pretrained=None, device="meta")


def conform(model: Any, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict as `model` names it: open_clip's own conversions, in the order its load_checkpoint runs them."""
    from open_clip.model import convert_to_custom_text_state_dict

    out = dict(state)
    with contextlib.suppress(ImportError):  # convert_state_dict (MobileCLIP layouts) is missing in older open_clip
        from open_clip.convert import convert_state_dict

        out = dict(convert_state_dict(model, out))
    if "positional_embedding" in out and not hasattr(model, "positional_embedding"):
        out = dict(convert_to_custom_text_state_dict(out))
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in out and isinstance(target, torch.Tensor) and out[key].ndim != target.ndim:
            out[key] = out[key].reshape(target.shape)
    out.pop("text.transformer.embeddings.position_ids", None)  # dropped by newer transformers, as open_clip does
    return out


def shapes_of(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


@dataclass(frozen=True)
class Misfit:
    """How a state dict differs from an architecture's: what it lacks, what it has extra, what has another shape."""

    architecture: str
    expected: int
    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    reshaped: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]
    """(key, shape in the file, shape the architecture needs)"""

    def describe(self) -> str:
        common = self.expected - len(self.missing)
        if common == 0:
            examples = ", ".join(self.unexpected[:_SHOWN])
            return (
                f"none of its {len(self.unexpected)} tensors is one of {self.architecture}'s {self.expected} "
                f"(it has {examples}, ...): it is not a CLIP checkpoint of this layout"
            )
        parts = []
        if self.reshaped:
            shown = "; ".join(
                f"{key} is {_shape(got)} in the file but {_shape(need)} in {self.architecture}"
                for key, got, need in self.reshaped[:_SHOWN]
            )
            more = len(self.reshaped) - _SHOWN
            parts.append(shown + (f" (and {more} more tensors differ in shape)" if more > 0 else ""))
        if self.missing:
            parts.append(f"{len(self.missing)} tensors are missing ({_names(self.missing)})")
        if self.unexpected:
            extra = _names(self.unexpected)
            parts.append(f"{len(self.unexpected)} tensors are not part of {self.architecture} ({extra})")
        return "; ".join(parts)


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _names(keys: tuple[str, ...]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")


def misfit(architecture: str, expected: Shapes, found: Shapes) -> Misfit | None:
    """None when every key and every shape matches."""
    missing = tuple(k for k in expected if k not in found)
    unexpected = tuple(k for k in found if k not in expected)
    reshaped = tuple((k, found[k], expected[k]) for k in expected if k in found and found[k] != expected[k])
    if not (missing or unexpected or reshaped):
        return None
    return Misfit(architecture, len(expected), missing, unexpected, reshaped)


def compare(name: str, state: Mapping[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], Misfit | None]:
    """The state dict conformed to open_clip model `name`, and how it differs from it (None: it fits)."""
    try:
        model = meta_model(name)
    except Exception as exc:  # open_clip raises RuntimeError, ValueError, KeyError... for configs it cannot build
        raise WeightsFileError(f"open_clip cannot build {name} to check {path} against it: {exc}") from exc
    conformed = conform(model, state)
    return conformed, misfit(name, shapes_of(model.state_dict()), shapes_of(conformed))


def check_fits(name: str, state: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The state dict conformed to open_clip model `name`; WeightsFileError saying what differs, and what fits."""
    conformed, difference = compare(name, state, path)
    if difference is None:
        return conformed
    others = [n for n in fitting_models(state) if n != name]
    hint = f" It fits {' and '.join(others)}: choose that model." if others else ""
    raise WeightsFileError(f"Weights file {path} does not fit open_clip model {name}: {difference.describe()}.{hint}")


def _blocks(keys: set[str], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in keys if k.startswith(prefix)})


def _could_fit(config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> bool:
    """A cheap first look from the config alone, so that only likely architectures get built (seconds each).

    Each size the config names must be some tensor's size, and the towers must be of the file's kind: open_clip's
    own ViT (with as many blocks), its ResNet (an attention pool), or a timm trunk.
    """
    vision = config.get("vision_cfg") or {}
    text = config.get("text_cfg") or {}
    if "hf_model_name" in text:
        return False  # a Hugging Face text tower: building it needs its config from the hub
    keys = set(state)
    dims = {d for t in state.values() for d in t.shape}
    sizes = [config.get("embed_dim"), text.get("width"), text.get("vocab_size"), text.get("context_length")]
    if "timm_model_name" in vision:
        tower = any(k.startswith("visual.trunk.") for k in keys)
    elif isinstance(vision.get("layers"), (list, tuple)):
        tower = any(k.startswith("visual.attnpool.") for k in keys)
    else:
        sizes += [vision.get("width"), vision.get("patch_size")]
        tower = _blocks(keys, "visual.transformer.resblocks.") == vision.get("layers")
    texts = any(k.startswith(("transformer.resblocks.", "text.")) for k in keys)
    return tower and texts and all(s in dims for s in sizes if isinstance(s, int))


def fitting_models(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The open_clip architectures the state dict fits exactly; a '-quickgelu' twin is left out beside its base."""
    import open_clip

    fits: list[str] = []
    for name in open_clip.list_models():
        config = open_clip.get_model_config(name)
        if not config or not _could_fit(config, state):
            continue
        try:
            model = meta_model(name)
        except Exception:  # noqa: S112 - a config this open_clip cannot build here is simply not a candidate
            continue
        if misfit(name, shapes_of(model.state_dict()), shapes_of(conform(model, state))) is None:
            fits.append(name)
    return [n for n in fits if not (n.endswith(QUICKGELU_SUFFIX) and n[: -len(QUICKGELU_SUFFIX)] in fits)]
