"""One line about the machine a benchmark ran on, so every printed figure says where it came from."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe(*extras: str) -> str:
    """Date, OS, Python, CPU and load, plus what the caller adds (library versions, GPU, Qt platform)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    parts = [
        f"date {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        platform.platform(),
        f"python {platform.python_version()}",
        f"cpu: {cpu_model()}, {os.cpu_count()} logical cores",
        f"load average {load}",
        *extras,
    ]
    return " | ".join(parts)
