"""The app's SVG icons (resources/), found both in a source checkout and in a PyInstaller bundle."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon


def resources_dir() -> Path:
    """resources/ beside the harapp package: the repository root, or the bundle's data folder."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


@cache
def icon(name: str) -> QIcon:
    """An action icon by name (train, cancel, retrain, predict, open, label, undo, redo); empty if missing.

    SVG lets Qt rasterise at the screen's device pixel ratio, so icons stay sharp on high-DPI screens.
    """
    path = resources_dir() / "icons" / f"{name}.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()


def app_icon() -> QIcon:
    path = resources_dir() / "harapp.svg"
    return QIcon(str(path)) if path.is_file() else QIcon()
