"""Export a project's labels: CSV, COCO-style JSON (importable again) and an ImageFolder tree.

Every export is written beside its destination and renamed into place, so a crash never leaves half a file
(or half a folder tree) where a previous export was.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harapp.core.atomic import atomic_writer
from harapp.core.errors import DatasetError, MissingFilesError
from harapp.core.importers.folder import class_to_folder
from harapp.core.missing_files import find_missing
from harapp.core.store import Project
from harapp.core.types import ImageRecord

EXPORT_MARKER = ".harapp-export"
COCO_EXPORT_VERSION = 1


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def present_records(project: Project, records: list[ImageRecord], skip_missing: bool) -> list[ImageRecord]:
    """The records whose photo is on disk; with photos missing and skip_missing False, a MissingFilesError
    that lists them (an export that silently leaves photos out looks complete and is not)."""
    missing = find_missing((r.id, r.path) for r in records)
    if not missing.count:
        return records
    if not skip_missing:
        raise MissingFilesError(f"{project.path}: cannot export: {missing.describe()}", missing)
    gone = set(missing.image_ids)
    return [r for r in records if r.id not in gone]


def _check_destination(out: Path, kind: str) -> None:
    """Say what is wrong with the destination before any work: a parent that is a file, a folder in the way."""
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DatasetError(f"{out}: cannot export there: {parent} is a file, not a folder")
            break
    if kind == "file" and out.is_dir():
        raise DatasetError(f"{out}: is a folder; give a file name for the export, e.g. {out / 'labels.json'}")


def export_csv(project: Project, out: Path, skip_missing: bool = False) -> int:
    """One row per image: path, label, source, votes (compact JSON). Returns the number of rows."""
    _check_destination(Path(out), "file")
    records = present_records(project, project.images(), skip_missing)
    with atomic_writer(Path(out), "w") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "source", "votes"])
        for record in records:
            label = record.label
            writer.writerow(
                [
                    str(record.path),
                    label.class_name if label else "",
                    label.source if label else "",
                    _compact(record.votes),
                ]
            )
    return len(records)


def _common_root(records: list[ImageRecord]) -> Path:
    if not records:
        return Path.cwd()
    try:
        return Path(os.path.commonpath([str(r.path.parent) for r in records]))
    except ValueError:  # paths on different drives share no root
        return Path(records[0].path.anchor)


def _activity(label: Any, votes: dict[str, int]) -> dict[str, Any]:
    if label is None:
        return {"label": None, "source": None, "votes": votes, "confidence": None}
    return {"label": label.class_name, "source": label.source, "votes": votes, "confidence": label.confidence}


def export_coco(project: Project, out: Path, skip_missing: bool = False) -> int:
    """COCO-style JSON: the original image entries plus an `activity` per image and per person annotation.

    `harapp.images_dir` records where file names are relative to, so import_coco reads the file back.
    Returns the number of images written.
    """
    _check_destination(Path(out), "file")
    records = present_records(project, project.images(), skip_missing)
    extras = project.image_extras()
    root = _common_root(records)
    used_ids = {r.coco_id for r in records if r.coco_id is not None}
    next_id = max(used_ids, default=0) + 1
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    seen_ids: set[int] = set()
    persons = {r.id: project.persons(r.id) for r in records}
    next_ann = max((p.coco_id for ps in persons.values() for p in ps if p.coco_id is not None), default=0) + 1
    for record in records:
        image_id = record.coco_id
        if image_id is None or image_id in seen_ids:
            image_id, next_id = next_id, next_id + 1
        seen_ids.add(image_id)
        entry = dict(extras.get(record.id, {}))
        entry.update(
            id=image_id,
            file_name=os.path.relpath(record.path, root).replace(os.sep, "/"),
            width=record.width,
            height=record.height,
            captions=list(record.captions),
            activity=_activity(record.label, record.votes),
        )
        images.append(entry)
        person_labels = project.person_labels(record.id)
        for person in persons[record.id]:
            ann_id = person.coco_id
            if ann_id is None:
                ann_id, next_ann = next_ann, next_ann + 1
            ann: dict[str, Any] = {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "bbox": list(person.box),
                "area": person.area,
                "iscrowd": 0,
            }
            if person.keypoints:
                ann["keypoints"] = list(person.keypoints)
                ann["num_keypoints"] = sum(1 for v in person.keypoints[2::3] if v > 0)
            if person.id in person_labels:
                ann["activity"] = _activity(person_labels[person.id], {})
            annotations.append(ann)
    document = {
        "info": {"description": f"harapp export of {project.path.name}"},
        "harapp": {"version": COCO_EXPORT_VERSION, "images_dir": str(root), "classes": project.class_names()},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    with atomic_writer(Path(out), "w") as handle:
        json.dump(document, handle, separators=(",", ":"))
    return len(images)


def _place(source: Path, dest: Path, link: bool) -> None:
    if link:
        with contextlib.suppress(OSError):
            os.link(source, dest)
            return
        with contextlib.suppress(OSError, NotImplementedError):
            dest.symlink_to(source.resolve())
            return
    shutil.copy2(source, dest)


def export_folders(project: Project, out: Path, link: bool = True, skip_missing: bool = False) -> int:
    """An ImageFolder tree of the labelled images (hard links, else symlinks, else copies).

    Built in a temporary folder and renamed into place; a previous harapp export at `out` is replaced,
    any other non-empty folder is left alone. Returns the number of images placed.
    """
    out = Path(out)
    _check_destination(out, "folder")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / EXPORT_MARKER).exists())):
        raise DatasetError(f"{out}: exists and is not an earlier harapp export; choose an empty or new folder")
    labelled = [r for r in project.images() if r.label is not None]
    records = present_records(project, labelled, skip_missing)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # mkdtemp makes a private (0700) folder; an export is meant to be shared like any other folder.
    # (Reading the umask would mean setting it, which races with other threads.)
    staging.chmod(0o755)
    placed = 0
    try:
        for record in records:
            if record.label is None:
                continue
            folder = staging / class_to_folder(record.label.class_name or "")
            folder.mkdir(exist_ok=True)
            dest = folder / record.path.name
            if dest.exists() or dest.is_symlink():
                # Two sources may hold the same file name: keep both, told apart by the image id.
                dest = folder / f"{record.path.stem}__{record.id}{record.path.suffix}"
            _place(record.path, dest, link)
            placed += 1
        (staging / EXPORT_MARKER).write_text(f"{project.path}\n", encoding="utf-8")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return placed
