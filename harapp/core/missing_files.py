"""Which of a project's photos are no longer on disk (deleted, or their folder moved after the import).

Checked with one directory listing per folder instead of a stat() per photo: a COCO import keeps all its
photos in one folder, so 118k photos cost one listing (about 0.1 s on a warm cache) rather than 118k system
calls. A folder that cannot be listed falls back to a stat() per photo in it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harapp.core.types import LabelSnapshot

EXAMPLES = 5


@dataclass(frozen=True)
class MissingFiles:
    """The result of one check: how many photos were looked for and which were not found."""

    checked: int
    image_ids: tuple[int, ...]
    paths: tuple[Path, ...]

    @property
    def count(self) -> int:
        return len(self.image_ids)

    def folders(self) -> tuple[Path, ...]:
        """The distinct folders of the missing photos, in order of first appearance."""
        return tuple(dict.fromkeys(p.parent for p in self.paths))

    def describe(self, limit: int = EXAMPLES) -> str:
        """'3 of 200 photos are missing on disk: a.jpg, b.jpg, ...' (empty when none is missing)."""
        if not self.image_ids:
            return ""
        shown = ", ".join(str(p) for p in self.paths[:limit])
        more = f" and {self.count - limit} more" if self.count > limit else ""
        return f"{self.count} of {self.checked} photos are missing on disk: {shown}{more}"


def _names_in(folder: str) -> set[str] | None:
    """Names of the files in a folder; an empty set when the folder is gone, None when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries if entry.is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:  # no permission to list, or a flaky network drive: ask file by file
        return None


def absent(paths: Sequence[Path | str]) -> list[bool]:
    """For each path, whether it is not an existing file (one listing per folder).

    Works on strings: at 100k photos, building a Path per photo would cost more than the listing itself."""
    listings: dict[str, set[str] | None] = {}
    out: list[bool] = []
    for path in paths:
        folder, _, name = os.fspath(path).rpartition(os.sep)
        names = listings.get(folder, _UNSEEN)
        if names is _UNSEEN:
            names = listings[folder] = _names_in(folder or os.curdir)
        out.append(not os.path.isfile(path) if names is None else name not in names)
    return out


_UNSEEN: set[str] = set()


def find_missing(images: Iterable[tuple[int, Path | str]]) -> MissingFiles:
    """Check (image id, path) pairs; the missing ones keep their order."""
    pairs = list(images)
    flags = absent([path for _, path in pairs])
    gone = [(image_id, Path(path)) for (image_id, path), flag in zip(pairs, flags, strict=True) if flag]
    return MissingFiles(len(pairs), tuple(i for i, _ in gone), tuple(p for _, p in gone))


def without_missing(snapshot: LabelSnapshot) -> tuple[LabelSnapshot, MissingFiles]:
    """The snapshot without the items whose photo is gone from disk, and what was left out."""
    missing = find_missing((item.image_id, item.path) for item in snapshot.items)
    if not missing.count:
        return snapshot, missing
    gone = set(missing.image_ids)
    kept = tuple(item for item in snapshot.items if item.image_id not in gone)
    return dataclasses.replace(snapshot, items=kept), missing
