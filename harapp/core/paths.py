"""Where harapp keeps settings, caches and the demo project, and the settings a person edits."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import platformdirs

from harapp.core.atomic import atomic_write_text
from harapp.core.errors import HarappError

APP_NAME = "harapp"
MAX_RECENT = 10


class UserDirError(HarappError, OSError):
    """A harapp folder (config, cache, data) cannot be used; an OSError too, so callers that already
    tolerate an unwritable folder keep doing so."""


def _dir_from_env(variable: str, default: str) -> Path:
    folder = Path(os.environ.get(variable) or default)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = f"{variable}={folder}" if os.environ.get(variable) else str(folder)
        cause = "it is a file, not a folder" if folder.exists() and not folder.is_dir() else (exc.strerror or str(exc))
        raise UserDirError(f"{what}: cannot use it as harapp's folder ({cause})") from exc
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
    """Settings a person may edit by hand in settings.json; unknown keys are ignored, and a key of the wrong
    type falls back to its default with one warning that names it."""

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
        folder = Path(self.weights_cache_dir).expanduser() if self.weights_cache_dir else cache_dir() / "weights"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserDirError(
                f"{settings_path()}: weights_cache_dir {folder} cannot be used ({exc.strerror or exc}); "
                "fix the setting or remove it"
            ) from exc
        return folder


log = logging.getLogger(__name__)
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    # load_settings runs often (menus, the weights cache); a typo is worth one warning per run, not dozens.
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


def _checked(key: str, value: Any, default: Any) -> Any:
    """The value if it has the default's type (recent_projects: a list of texts; a whole number where a float is
    expected), else the default."""
    if key == "recent_projects":
        if isinstance(value, list) and all(isinstance(p, str) for p in value):
            return tuple(value)
    elif isinstance(value, type(default)) and not isinstance(value, bool):
        return value
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # JSON has one number type: "decoded_cache_gb": 0 is a number of GB
    expected = "a list of file paths" if key == "recent_projects" else f"a {type(default).__name__}"
    _warn_once(key, f"{settings_path()}: {key!r} should be {expected}, found {value!r:.60}; using the default")
    return default


def load_settings() -> Settings:
    try:
        path = settings_path()
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except UserDirError as exc:
        _warn_once("<folder>", f"{exc}; using default settings")
        return Settings()
    except (OSError, ValueError) as exc:
        # A hand-edited file with a typo must not stop the app from starting.
        _warn_once("<file>", f"{settings_path()}: cannot read it ({exc}); using default settings")
        return Settings()
    if not isinstance(raw, dict):
        _warn_once("<file>", f"{path}: should hold a JSON object; using default settings")
        return Settings()
    defaults = Settings()
    known = {f.name for f in fields(Settings)}
    values = {k: _checked(k, v, getattr(defaults, k)) for k, v in raw.items() if k in known}
    return Settings(**values)


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
