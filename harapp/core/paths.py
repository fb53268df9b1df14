"""Where harapp keeps settings, caches and the demo project, and the settings a person edits."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import platformdirs

from harapp.core.atomic import atomic_write_text

APP_NAME = "harapp"
MAX_RECENT = 10


def _dir_from_env(variable: str, default: str) -> Path:
    folder = Path(os.environ.get(variable) or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def config_dir() -> Path:
    return _dir_from_env("HARAPP_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    return _dir_from_env("HARAPP_CACHE_DIR", platformdirs.user_cache_dir(APP_NAME))


def data_dir() -> Path:
    return _dir_from_env("HARAPP_DATA_DIR", platformdirs.user_data_dir(APP_NAME))


def demo_project_path() -> Path:
    return data_dir() / "demo" / "demo.harapp"


def settings_path() -> Path:
    return config_dir() / "settings.json"


@dataclass(frozen=True)
class Settings:
    """Settings a person may edit by hand in settings.json; unknown keys are ignored."""

    weights_cache_dir: str = ""
    """Where pretrained weights are cached; empty means cache_dir()/weights."""
    recent_projects: tuple[str, ...] = ()
    default_model_kind: str = ""
    """The model kind a new training job starts with (Train form, `harapp train`); empty means harapp's default."""
    default_mode: str = ""
    """The mode a new job starts with where its kind allows it; empty means the kind's default mode."""
    device: str = "auto"
    """Where training and prediction run unless a command names a device: auto, cpu, cuda, cuda:N or mps."""
    clip_weights_file: str = ""
    """A local open_clip checkpoint to use when the model hub is unreachable."""
    decoded_cache_gb: float = 20.0
    """The most disk space (GB) one project's decoded-image cache (`<project>.cache/` beside the project) may
    take; photos beyond it are decoded on the fly each epoch. 0 turns the cache off."""

    def weights_dir(self) -> Path:
        folder = Path(self.weights_cache_dir) if self.weights_cache_dir else cache_dir() / "weights"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def load_settings() -> Settings:
    path = settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError):
        # A hand-edited file with a typo must not stop the app from starting.
        return Settings()
    if not isinstance(raw, dict):
        return Settings()
    known = {f.name for f in fields(Settings)}
    values = {k: v for k, v in raw.items() if k in known}
    if "recent_projects" in values:
        values["recent_projects"] = tuple(str(p) for p in values["recent_projects"])
    try:
        return Settings(**values)
    except TypeError:
        return Settings()


def save_settings(settings: Settings) -> None:
    data = asdict(settings)
    data["recent_projects"] = list(settings.recent_projects)
    atomic_write_text(settings_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")


def remember_project(path: Path) -> Settings:
    """Put a project first in the recent list and save the settings."""
    current = load_settings()
    resolved = str(Path(path).resolve())
    recent = (resolved, *(p for p in current.recent_projects if p != resolved))[:MAX_RECENT]
    updated = Settings(**{**asdict(current), "recent_projects": recent})
    save_settings(updated)
    return updated


def models_dir_for(project_path: Path) -> Path:
    """Checkpoints of a project live beside it, so moving the project folder keeps them together."""
    return Path(project_path).parent / f"{Path(project_path).stem}.models"


def new_checkpoint_path(project_path: Path, model_kind: str, mode: str) -> Path:
    """A fresh file name per run: earlier checkpoints stay, since the models table keeps pointing at them. The
    random tail keeps two runs started in the same second (the GUI and the CLI, say) apart: the file itself is
    written only when training ends."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return models_dir_for(project_path) / f"{model_kind}-{mode}-{stamp}-{uuid.uuid4().hex[:6]}.pt"
