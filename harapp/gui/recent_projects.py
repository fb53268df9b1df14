"""What the welcome view tells about each recent project: its image count, when it was last changed, a thumbnail.

Opening a project file and decoding a photo cost disk reads, so a worker does both and sends one plain record
per project; the thumbnail travels as a QImage (never a QPixmap off the GUI thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtGui import QImage

from harapp.core.errors import HarappError
from harapp.core.store import Project
from harapp.gui.thumbnails import load_thumbnail, thumbs_dir
from harapp.gui.workers import Worker

log = logging.getLogger(__name__)
THUMB_SIDE = 96


@dataclass(frozen=True)
class RecentInfo:
    path: Path
    images: int | None
    """None when the file is missing or cannot be read."""
    changed: str
    """The project file's last change, e.g. '2024-05-01 14:03'."""
    thumbnail: QImage | None = None
    problem: str = ""

    def summary(self) -> str:
        if self.problem:
            return self.problem
        count = f"{self.images:,} images" if self.images is not None else "? images"
        return f"{count} · changed {self.changed}"


def read_recent(path: Path) -> RecentInfo:
    """One project's summary; never raises (a broken file is described, not fatal)."""
    try:
        stat = path.stat()
    except OSError:
        return RecentInfo(path, None, "", None, "file not found")
    # SQLite writes to the -wal file first: the newest of the two is when the project last changed.
    wal = Path(str(path) + "-wal")
    mtime = max(stat.st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)
    changed = time.strftime("%Y-%m-%d %H:%M", time.localtime(mtime))
    try:
        with Project.open(path, readonly=True) as project:
            count = project.count_images()
            ids = project.image_ids()
            first = project.image(ids[0]).path if ids else None
    except HarappError as exc:
        return RecentInfo(path, None, changed, None, f"cannot be opened: {exc}")
    thumbnail = None
    if first is not None:
        image, _error = load_thumbnail(first, THUMB_SIDE, thumbs_dir())
        thumbnail = image if not image.isNull() else None
    return RecentInfo(path, count, changed, thumbnail)


class RecentProjectsWorker(Worker):
    """Reads each project in turn; progress is one RecentInfo per project."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self.paths = tuple(Path(p) for p in paths)

    def work(self) -> int:
        for path in self.paths:
            self.check_cancelled()
            try:
                info = read_recent(path)
            except Exception as exc:  # noqa: BLE001 - one odd file must not hide the others
                log.warning("could not read recent project %s: %s", path, exc)
                info = RecentInfo(path, None, "", None, f"cannot be read: {exc}")
            self.progressed.emit(info)
        return len(self.paths)
