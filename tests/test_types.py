"""mypy passes on harapp with the settings in pyproject.toml: strict, with the listed modules less so."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _mypy(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True)


def test_mypy_finds_no_errors() -> None:
    # The cache in the repository's .mypy_cache (ignored by git) keeps a rerun to a few seconds.
    result = _mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


@pytest.mark.parametrize("package", ["core", "cli"])
def test_core_and_cli_are_checked_strictly(package: str, tmp_path: Path) -> None:
    # A module of that package with an untyped function and a bare generic: strict mode refuses both.
    folder = tmp_path / "harapp" / package
    folder.mkdir(parents=True)
    (tmp_path / "harapp" / "__init__.py").write_text("")
    (folder / "__init__.py").write_text("")
    (folder / "probe.py").write_text("def untyped(x):\n    return x\n\n\ndef bare(d: dict) -> None:\n    pass\n")
    config = str(REPO / "pyproject.toml")
    result = _mypy("--config-file", config, "--cache-dir", str(tmp_path / "cache"), f"harapp/{package}", cwd=tmp_path)
    assert result.returncode == 1
    assert "[no-untyped-def]" in result.stdout and "[type-arg]" in result.stdout
