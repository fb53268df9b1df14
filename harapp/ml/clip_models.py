"""CLIP through open_clip: weights from a tag or a local file, and a zero-shot head from class prompts."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from harapp.ml import weights as W
from harapp.ml.clip_fit import check_fits
from harapp.ml.config import TrainConfig
from harapp.ml.errors import ConfigError, WeightsUnavailableError
from harapp.ml.kinds import ModelKind
from harapp.ml.models import BuiltModel, HarModel, Preprocess
from harapp.ml.weights_formats import read_weights_file
from harapp.ml.weights_registry import find_registered, read_registered_state

HF_DEFAULT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def clip_cache_dir() -> Path:
    folder = W.weights_dir() / "open_clip"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_name(name: str) -> None:
    import open_clip

    if name not in open_clip.list_models():
        raise ConfigError(f"open_clip has no model named {name!r} (e.g. ViT-B-32, ViT-B-16, RN50).")


def cached_pretrained_file(name: str, tag: str) -> Path | None:
    """The already-downloaded weights file for (name, tag), or None; never touches the network."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(name, tag)
    if cfg.get("hf_hub"):
        # open_clip's convention: 'org/model/' means the default file names, 'org/model/file.bin' one file.
        repo_id, filename = os.path.split(cfg["hf_hub"])
        names = (filename,) if filename else HF_DEFAULT_FILES
        for fname in names:
            found = try_to_load_from_cache(repo_id, fname, cache_dir=str(clip_cache_dir()))
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        return None
    if cfg.get("url"):
        candidate = clip_cache_dir() / os.path.basename(urlparse(cfg["url"]).path)
        return candidate if candidate.is_file() else None
    return None


def _download_host(name: str, tag: str) -> str:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    return W.HF_HOST if cfg.get("hf_hub") else (urlparse(cfg.get("url", "")).hostname or W.HF_HOST)


class _RandomInitNotice(logging.Filter):
    """open_clip warns on every random-init model; that is the intended case in tests and benchmarks."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


_NOTICE_FILTER = _RandomInitNotice()


def _create(name: str, **kwargs: object) -> Any:
    """An open_clip CLIP model (open_clip ships no types: its visual tower, encode_text etc. are untyped)."""
    import open_clip

    root = logging.getLogger()
    if _NOTICE_FILTER not in root.filters:
        root.addFilter(_NOTICE_FILTER)
    return open_clip.create_model(name, **kwargs)


def _from_file(name: str, path: str, quick_gelu: bool = False) -> Any:
    """Any format `harapp weights add` takes (open_clip .bin/.pt, .safetensors, OpenAI's TorchScript .pt), checked
    key by key and shape by shape, with the same messages."""
    state = check_fits(name, read_weights_file(path).state, Path(path))
    model = _create(name, pretrained=None, force_quick_gelu=quick_gelu)
    model.load_state_dict(state)
    return model


def _from_registry(name: str, tag: str) -> tuple[Any, str] | None:
    """The weights `harapp weights add` stored for (name, tag), in the variant they were registered with."""
    entry = find_registered(name, tag)
    if entry is None:
        return None
    model = _create(name, pretrained=None, force_quick_gelu=entry.quick_gelu)
    try:
        model.load_state_dict(read_registered_state(entry))
    except RuntimeError as exc:  # open_clip changed the architecture since the file was registered
        raise WeightsUnavailableError(
            f"The weights registered for {name} ({tag}) at {entry.path} no longer fit it: "
            f"{str(exc).splitlines()[0]}. Run `harapp weights remove {name} {entry.pretrained}` and add them again."
        ) from exc
    return model, entry.source


def uses_quick_gelu(name: str, tag: str | None) -> bool:
    """OpenAI's CLIP weights need QuickGELU; open_clip knows it from the tag, a bare architecture does not."""
    import open_clip

    return bool(tag and open_clip.get_pretrained_cfg(name, tag).get("quick_gelu", False))


def create_clip(
    name: str, tag: str | None, weights_path: str | None, *, arch_tag: str | None = None
) -> tuple[Any, str]:
    """A full open_clip model and where its weights came from; WeightsUnavailableError within seconds if none.

    arch_tag: the pretrained tag whose architecture variant (QuickGELU or not) a file or a random init follows,
    so a model restored from a checkpoint computes exactly what the trained one did.
    """
    import open_clip

    _check_name(name)
    quick = uses_quick_gelu(name, arch_tag or tag)
    if weights_path:
        return _from_file(name, weights_path, quick), f"file:{weights_path}"
    if not tag:
        return _create(name, pretrained=None, force_quick_gelu=quick), "random"
    registered = _from_registry(name, tag)  # before the hub: what the user registered works offline
    if registered is not None:
        return registered
    if not open_clip.get_pretrained_cfg(name, tag):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise WeightsUnavailableError(f"open_clip has no pretrained tag {tag!r} for {name}; known tags: {tags}.")
    source = f"open_clip:{name}:{tag}"
    what = f"CLIP {name} (pretrained tag {tag!r})"
    try:
        if cached_pretrained_file(name, tag) is not None:
            with W.forced_offline():
                return _create(name, pretrained=tag, cache_dir=str(clip_cache_dir())), source
        fallback = W.settings_clip_file()
        host = _download_host(name, tag)
        if W.hub_offline() or not W.host_reachable(host):
            if fallback:
                return _from_file(name, fallback, quick), f"file:{fallback}"
            reason = "HF_HUB_OFFLINE is set" if W.hub_offline() else f"{host} cannot be reached"
            register = f"harapp weights add FILE --model {name} --pretrained {tag}"
            raise W.unavailable(what, f"they are not in the cache ({clip_cache_dir()}) and {reason}", register=register)
        # huggingface_hub shows a tqdm progress bar on stderr while it downloads.
        return _create(name, pretrained=tag, cache_dir=str(clip_cache_dir())), source
    except (OSError, RuntimeError) as exc:
        raise W.unavailable(what, f"loading failed: {exc}") from exc


def clip_preprocess(visual: nn.Module) -> Preprocess:
    cfg = getattr(visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(visual, "image_size", 224))
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    mode = "squash" if cfg.get("resize_mode") == "squash" else "center-crop"
    return Preprocess(size, mean, std, mode, 1.0, str(cfg.get("interpolation", "bicubic")))


def class_prompt_text(class_name: str) -> str:
    return class_name.replace("_", " ").replace("-", " ")


@torch.no_grad()
def text_classifier(clip: Any, name: str, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """One unit vector per class: the mean of its prompt embeddings, the usual prompt ensemble."""
    import open_clip

    tokenizer = open_clip.get_tokenizer(name)
    rows = []
    for cls in class_names:
        tokens = tokenizer([t.format(class_prompt_text(cls)) for t in templates])
        emb = F.normalize(clip.encode_text(tokens).float(), dim=-1).mean(0)
        rows.append(F.normalize(emb, dim=-1))
    return torch.stack(rows)


_TEXT_CACHE: dict[tuple[object, ...], torch.Tensor] = {}


def zero_shot_weight(classifier: torch.Tensor, model: HarModel) -> torch.Tensor:
    """The head weight of a zero-shot classifier over every image view: the mean of the views' logits (each
    view is a photo of the person), and nothing from the pose vector, which no text describes."""
    n_views = len(model.image_views)
    parts = [classifier / n_views] * n_views
    if model.pose_dim:
        parts.append(classifier.new_zeros(classifier.shape[0], model.pose_dim))
    return torch.cat(parts, dim=1)


def build_clip(
    kind: ModelKind, config: TrainConfig, class_names: Sequence[str], *, init_head: bool = True, backbone: bool = True
) -> BuiltModel:
    """CLIP's head starts from its text encoder's class embeddings, so it is always built in full (backbone is
    ignored)."""
    tag = config.clip_pretrained if config.pretrained else None
    weights_path = config.weights_path if config.pretrained else None
    clip, source = create_clip(config.clip_model, tag, weights_path, arch_tag=config.clip_pretrained)
    clip.eval()
    visual = clip.visual
    dim = int(getattr(visual, "output_dim", 0) or clip.text_projection.shape[-1])
    model = HarModel(kind, visual, dim, len(class_names), normalize=True, views=config.views)
    if init_head:
        # A retrain after label corrections asks for the same prompts again: encoding them through the text
        # tower is over a second of a one-click retrain on a CPU, so keep them for the session.
        seed = config.seed if source == "random" else None
        key = (config.clip_model, source, seed, tuple(class_names), config.prompt_templates())
        classifier = _TEXT_CACHE.get(key)
        if classifier is None:
            classifier = text_classifier(clip, config.clip_model, class_names, config.prompt_templates())
            if len(_TEXT_CACHE) >= 16:
                _TEXT_CACHE.pop(next(iter(_TEXT_CACHE)))
            _TEXT_CACHE[key] = classifier
        scale = float(clip.logit_scale.exp().item()) if hasattr(clip, "logit_scale") else 100.0
        model.head.linear.weight.data.copy_(zero_shot_weight(classifier * scale, model))
        with torch.no_grad():
            model.head.linear.bias.zero_()
    return BuiltModel(model, clip_preprocess(visual), source, architecture=config.clip_model)
