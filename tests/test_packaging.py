"""The packaged app's entry point and its headless smoke check, run from the source tree as build.sh runs them."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_launcher_smoke_check_opens_and_closes_the_real_window() -> None:
    # The environment (isolated settings folders, offscreen Qt, offline hub) comes from tests/conftest.py.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "harapp_launcher.py"), "--smoke-test"],
        capture_output=True, text=True, env=env, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "smoke test ok: window opened and closed" in done.stdout


def test_desktop_entry_points_at_the_command_and_the_icon() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive in desktop files
    entry.read(REPO / "resources" / "harapp.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Exec"].split()[0] == "harapp"
    assert (REPO / "resources" / f"{section['Icon']}.svg").is_file()
    spec = (REPO / "packaging" / "harapp.spec").read_text(encoding="utf-8")
    assert "harapp_launcher.py" in spec and "resources" in spec
