"""The layers stay apart: core imports neither Qt nor torch, ml imports no Qt."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import harapp.core
import harapp.ml

REPO = Path(__file__).resolve().parents[2]


def _modules(package) -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + "."))


def _imported_after(*modules: str) -> set[str]:
    # A fresh interpreter, so modules imported by other tests do not hide a violation.
    code = f"import sys, {', '.join(modules)}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return {name.split(".")[0] for name in out.stdout.split()}


def test_core_modules_import_neither_qt_nor_torch() -> None:
    modules = _modules(harapp.core)
    assert "harapp.core.store" in modules
    for module in modules:
        loaded = _imported_after(module)
        assert not loaded & {"PySide6", "torch", "torchvision", "open_clip"}, module


def test_ml_modules_import_no_qt() -> None:
    # One interpreter for all of them: each torch import costs seconds.
    assert "PySide6" not in _imported_after(*_modules(harapp.ml))
