"""Which files count as photos, and the photos a list of files and folders names."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def expand_image_paths(paths: Iterable[Path]) -> list[Path]:
    """Files as given, plus the image files inside folders (recursively, sorted).

    A file named directly is kept whatever its type, so that its reader can say why it is not a photo.
    """
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and is_image_name(p))
        else:
            found.append(path)
    return found
