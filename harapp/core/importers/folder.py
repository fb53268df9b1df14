"""Import a folder of photos: an ImageFolder tree (one subfolder per class, labels by a person) or a flat
folder (recursive, unlabelled). Files that are not images are reported with the reason and skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from PIL import Image, UnidentifiedImageError

from harapp.core.errors import DatasetError
from harapp.core.store import Project

Progress = Callable[[str, int, int], None]
LAYOUTS = ("auto", "imagefolder", "flat")
_PLAUSIBLE_CLASS = re.compile(r"^[^\W\d_][\w %/&+-]{0,63}$")
# Folder names that organise data rather than name an activity: a tree of these is not an ImageFolder.
_NOT_CLASSES = frozenset(
    ("images", "imgs", "img", "photos", "pictures", "pics", "data", "dataset", "train", "val", "valid")
    + ("validation", "test", "annotations")
)


@dataclass(frozen=True)
class FolderImportReport:
    images: int
    labelled: int
    skipped: tuple[tuple[str, str], ...]
    """(file relative to the folder, why it was skipped)"""


def class_to_folder(name: str) -> str:
    """A class name as a folder name; reversible (a merged class 'walking/running' keeps its slash)."""
    text = quote(name, safe=" -_()+,;=@&'")
    return "%2E" + text[1:] if text.startswith(".") else text


def folder_to_class(name: str) -> str:
    return unquote(name)


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in ("Thumbs.db", "desktop.ini", "__MACOSX")


def detect_layout(folder: Path, class_names: set[str]) -> str:
    entries = [e for e in os.scandir(folder) if _visible(e.name)]
    if not entries:
        return "flat"
    for entry in entries:
        if not entry.is_dir():
            return "flat"
        name = folder_to_class(entry.name)
        if name not in class_names and (not _PLAUSIBLE_CLASS.match(name) or name.lower() in _NOT_CLASSES):
            return "flat"
    return "imagefolder"


def _image_size(path: Path) -> tuple[int, int] | str:
    """(width, height), or why the file is not a usable image."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except UnidentifiedImageError:
        return "not an image (no known image format)"
    except Image.DecompressionBombError as exc:
        return f"image too large ({exc})"
    except (OSError, ValueError, SyntaxError) as exc:
        return f"unreadable image ({exc})"
    if width <= 0 or height <= 0:
        return "image has no pixels"
    return width, height


def _walk(folder: Path) -> list[Path]:
    found: list[Path] = []
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        found.extend(Path(current) / f for f in sorted(files) if _visible(f))
    return found


def import_folder(
    project: Project, folder: Path, *, layout: str = "auto", progress: Progress | None = None
) -> FolderImportReport:
    """Import every image under `folder`; with the ImageFolder layout each subfolder's name is the label."""
    folder = Path(folder)
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown folder layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: images folder not found")
    if layout == "auto":
        layout = detect_layout(folder, set(project.class_names()))
    files = _walk(folder)
    skipped: list[tuple[str, str]] = []
    images = labelled = 0
    with project.transaction():
        source_id = project.add_source("folder", folder, {"layout": layout})
        class_names = set(project.class_names())
        current = {r.id: r.label for r in project.images()} if project.count_images() else {}
        for done, path in enumerate(files, 1):
            rel = path.relative_to(folder).as_posix()
            size = _image_size(path)
            if isinstance(size, str):
                skipped.append((rel, size))
                continue
            label = folder_to_class(rel.split("/", 1)[0]) if layout == "imagefolder" and "/" in rel else None
            image_id = project.upsert_image(source_id, rel, size[0], size[1])
            images += 1
            if label is not None:
                if label not in class_names:
                    project.add_class(label)
                    class_names.add(label)
                old = current.get(image_id)
                # A correction made in the app is not undone by importing the same tree again.
                if old is None or old.source != "human":
                    project.set_label(image_id, label, "human", reason="import")
                labelled += 1
            if progress is not None and (done % 500 == 0 or done == len(files)):
                progress("importing", done, len(files))
        project.update_source_details(source_id, {"layout": layout, "skipped": len(skipped)})
    return FolderImportReport(images, labelled, tuple(skipped))
