"""What opening and checking a project costs: quick_check, Project.open (with and without the check), stats,
and the missing-photos check. Make a big project first with bench/big_project.py.

Run: PYTHONPATH=. .venv/bin/python bench/open_cost.py /tmp/big/big.harapp [--repeat 3]
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from harapp.core.store import Project
from harapp.core.store import health as store_health


def _time(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = args.project

    def quick_check() -> None:
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA quick_check").fetchall()
        conn.close()

    def open_checked() -> None:
        store_health.forget(path)
        Project.open(path, readonly=True).close()

    def open_trusted() -> None:
        with Project.open(path, readonly=True):
            pass  # the clean close records the fingerprint, so the next open is trusted
        Project.open(path, readonly=True).close()

    with Project.open(path, readonly=True) as project:
        images = project.count_images()
        figures = {
            "PRAGMA quick_check": _time(quick_check, args.repeat),
            "Project.open, file not known healthy (runs quick_check)": _time(open_checked, args.repeat),
            "Project.open, fingerprint matches (no check)": _time(open_trusted, args.repeat) / 2,
            "stats(check_files=False)": _time(lambda: project.stats(check_files=False), args.repeat),
            "missing_files()": _time(project.missing_files, args.repeat),
            "stats()": _time(project.stats, args.repeat),
        }
    print(f"{path}: {images:,} images, {path.stat().st_size / 1e6:.0f} MB (best of {args.repeat}, warm cache)")
    for name, ms in figures.items():
        print(f"  {name:<58} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
