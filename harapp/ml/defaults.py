"""What a new job starts from when nobody chose: the person's settings.json, else the model-kind registry.

The Train form and `harapp train` both start here, so the same labels train the same model from either.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from harapp.core.paths import Settings, load_settings
from harapp.ml.config import TrainConfig
from harapp.ml.kinds import DEFAULT_KIND, KINDS, MODES, Mode

log = logging.getLogger(__name__)

# What device.resolve_device accepts; checked here so that a typo in settings.json is named as such.
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def preferred_choice(settings: Settings | None = None) -> tuple[str, Mode]:
    """The kind and mode a new job starts with: settings.json's default_model_kind and default_mode where
    they name a kind and a mode it allows, else the registry's default kind and that kind's default mode."""
    settings = settings or load_settings()
    kind_name = settings.default_model_kind or DEFAULT_KIND
    if kind_name not in KINDS:
        log.warning("settings.json: default_model_kind %r is not a model kind; using %s", kind_name, DEFAULT_KIND)
        kind_name = DEFAULT_KIND
    kind = KINDS[kind_name]
    wanted = settings.default_mode
    if wanted and wanted not in MODES:
        log.warning("settings.json: default_mode %r is not a mode (%s)", wanted, ", ".join(MODES))
    for mode in kind.modes:
        if mode == wanted:
            return kind.name, mode
    return kind.name, kind.default_mode


def preferred_device(settings: Settings | None = None) -> str:
    """settings.json's device, or 'auto' when it is not one harapp knows."""
    device = (settings or load_settings()).device.strip().lower()
    if _DEVICE.match(device):
        return device
    log.warning("settings.json: device %r is not auto, cpu, cuda, cuda:N or mps; using auto", device)
    return "auto"


def start_config(
    kind: str | None = None, mode: str | None = None, *, settings: Settings | None = None, **fields: Any
) -> TrainConfig:
    """A new job's config, not yet validated: the kind and mode given (None: the preferred ones), the
    registry's hyperparameters for them, the preferred device, and ``fields`` on top."""
    settings = settings or load_settings()
    if kind is None:
        kind = preferred_choice(settings)[0]
    if mode is None:
        mode = _preferred_mode_for(kind, settings)
    return TrainConfig.for_kind(kind, mode, **{"device": preferred_device(settings), **fields})


def _preferred_mode_for(kind: str, settings: Settings) -> str | None:
    """settings.json's default_mode when the kind allows it; None (the kind's own default) otherwise."""
    spec = KINDS.get(kind)
    return settings.default_mode if spec is not None and settings.default_mode in spec.modes else None
