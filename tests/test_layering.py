"""The layers stay apart, checked two ways: import-linter's contracts in pyproject.toml (every import statement,
lazy ones too, and indirect chains), and real imports in fresh interpreters (what actually gets loaded)."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import harapp.core
import harapp.ml

REPO = Path(__file__).resolve().parents[1]
QT_AND_TORCH = {"PySide6", "shiboken6", "torch", "torchvision", "open_clip", "timm"}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the harapp package and pyproject.toml under root, in a fresh interpreter."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)


def test_import_contracts_hold() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_import_contracts_catch_a_leak_through_another_module(tmp_path: Path) -> None:
    shutil.copytree(REPO / "harapp", tmp_path / "harapp", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    # core reaching torch through ml (a lazy import, as a quick fix would write it), and ml reaching Qt.
    (tmp_path / "harapp" / "core" / "leak.py").write_text("def f() -> None:\n    import harapp.ml.models\n")
    (tmp_path / "harapp" / "ml" / "leak.py").write_text("from harapp.gui.style import is_dark\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1
    assert "core never imports torch or the libraries built on it BROKEN" in result.stdout
    assert "core and ml never import Qt BROKEN" in result.stdout
    assert "harapp.core.leak -> harapp.ml.models" in result.stdout


def _loaded_after(code: str) -> set[str]:
    """Top-level packages loaded by running code in a fresh interpreter (other tests' imports hide nothing)."""
    script = f"import sys\n{code}\nprint('\\n'.join(sys.modules))"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stderr
    return {name.split(".")[0] for name in out.stdout.split()}


def _modules(package: object) -> list[str]:
    path, prefix = package.__path__, package.__name__ + "."  # type: ignore[attr-defined]
    return sorted(m.name for m in pkgutil.walk_packages(path, prefix))


def test_core_modules_load_neither_qt_nor_torch() -> None:
    modules = _modules(harapp.core)
    assert "harapp.core.store.project" in modules and "harapp.core.importers.coco" in modules
    assert not _loaded_after("\n".join(f"import {m}" for m in modules)) & QT_AND_TORCH


def test_ml_modules_load_no_qt() -> None:
    # Their builders are imported by name, which import-linter cannot see: load them all here.
    code = "\n".join(f"import {m}" for m in _modules(harapp.ml))
    code += "\nfrom harapp.ml.kinds import KINDS\nfor kind in KINDS.values(): kind.load_builder()"
    assert not _loaded_after(code) & {"PySide6", "shiboken6"}


def test_the_window_and_the_command_line_start_without_torch() -> None:
    # torch's first import takes seconds: the window and `harapp --help` must not wait for it.
    code = "import harapp.gui.main_window, harapp.cli\nharapp.cli.build_parser()"
    loaded = _loaded_after(code)
    assert "PySide6" in loaded
    assert not loaded & {"torch", "torchvision", "open_clip", "timm"}
