"""What killed training runs leave beside a project: hidden temporary checkpoint files, and finished
checkpoints that never made it into the project's models table (the run died before registering them).

Only the file system is looked at here; reading a checkpoint needs torch, so registering the ones found is
harapp.ml.checkpoint.adopt_leftovers' job.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from harapp.core.paths import models_dir_for
from harapp.core.store import Project

STALE_AFTER_S = 600.0
"""A temporary older than this is no write in progress: a checkpoint is written in seconds, then renamed."""


def _temporaries(folder: Path) -> list[Path]:
    # atomic_writer names them ".<checkpoint name>.<random>.tmp".
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return [Path(e.path) for e in entries if e.name.startswith(".") and e.name.endswith(".tmp") and ".pt." in e.name]


def clean_stale_temporaries(project_path: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Delete temporary checkpoint files that no running write can own any more; returns those deleted."""
    removed = []
    limit = time.time() - older_than_s
    for path in _temporaries(models_dir_for(project_path)):
        with contextlib.suppress(OSError):  # gone already, or a read-only folder: nothing to do
            if path.stat().st_mtime < limit:
                path.unlink()
                removed.append(path)
    return removed


def unregistered_checkpoints(project: Project) -> list[Path]:
    """Checkpoint files in the project's models folder that its models table does not list, oldest first."""
    folder = models_dir_for(project.path)
    try:
        files = [Path(e.path) for e in os.scandir(folder) if e.name.endswith(".pt") and not e.name.startswith(".")]
    except OSError:
        return []
    known = {_same_file_key(m.path) for m in project.models()}
    found = [f for f in files if _same_file_key(f) not in known]
    return sorted(found, key=lambda p: (p.stat().st_mtime, p.name))


def _same_file_key(path: Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)
