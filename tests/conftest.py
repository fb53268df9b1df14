"""Test-wide setup: offscreen Qt, no network, settings in a temp dir, and a guard against stray QThreads."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before anything imports Qt or huggingface_hub: both read these once at import.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"

SHARED_COCO_HAR = Path(os.environ.get("HARAPP_COCO_HAR", Path(__file__).resolve().parents[2] / "shared" / "coco-har"))


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Keep settings, caches and the demo project of every test away from the real user folders."""
    base = tmp_path_factory.mktemp("userdirs")
    for name in ("CONFIG", "CACHE", "DATA"):
        folder = base / name.lower()
        folder.mkdir()
        monkeypatch.setenv(f"HARAPP_{name}_DIR", str(folder))
    yield base


@pytest.fixture
def coco_har() -> Path:
    """The real COCO photos beside the checkout; tests that need them skip when they are absent."""
    if not (SHARED_COCO_HAR / "annotations").is_dir():
        pytest.skip(f"real COCO data not found at {SHARED_COCO_HAR}")
    return SHARED_COCO_HAR


def _running_qthreads() -> list[str]:
    if "PySide6.QtCore" not in sys.modules:
        return []
    from PySide6.QtCore import QThread

    running = []
    for obj in gc.get_objects():
        try:
            if issubclass(type(obj), QThread) and obj.isRunning() and obj is not QThread.currentThread():
                running.append(obj.objectName() or type(obj).__name__)
        except RuntimeError:  # the C++ side is already deleted
            continue
    return running


@pytest.fixture(autouse=True)
def no_qthread_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "PySide6.QtCore" not in sys.modules:
        return
    from PySide6.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    if app is not None:
        app.processEvents()
        gc.collect()  # here, on the GUI thread, not in the next test's worker threads
    leftovers = _running_qthreads()
    if leftovers:
        # Stop them so later tests are not poisoned, then fail this one.
        for obj in gc.get_objects():
            try:
                if issubclass(type(obj), QThread) and obj.isRunning():
                    obj.quit()
                    obj.wait(5000)
            except RuntimeError:
                continue
        pytest.fail(f"test left QThread(s) running: {leftovers}")
