"""Import a COCO dataset (captions, instances, person_keypoints) into a project, with caption-derived labels.

The whole import is one transaction: files are read and validated first, then written in one commit, so a
bad file or a crash leaves the project as it was. Images the annotations name but the disk lacks (a partial
download) are counted and reported, never fatal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harapp.core.errors import DatasetError
from harapp.core.importers.captions import decide, map_votes, mentions_person, tally
from harapp.core.importers.coco_json import CAPTIONS, CocoFile, build_index, person_category_ids, read_coco_file
from harapp.core.store import Project
from harapp.core.store.bulk import ImageRow, LabelRow, PersonRow
from harapp.core.types import ClassInfo, Source, parse_source

Progress = Callable[[str, int, int], None]
_ANNOTATION_PREFIXES = ("captions_", "instances_", "person_keypoints_")
_PROGRESS_EVERY = 2000
MISSING_EXAMPLES = 5


@dataclass(frozen=True)
class ImportReport:
    images: int
    labelled: int
    uncertain: int
    persons: int
    missing: int
    missing_examples: tuple[str, ...]
    skipped_no_person: int
    per_class: dict[str, int] = field(default_factory=dict)
    source_id: int | None = None
    source_ids: tuple[int, ...] = ()
    orphan_annotations: int = 0
    """Annotations skipped because they name an image id missing from their file's 'images'."""
    named: int = 0
    """Images the annotation files name (in scope or not, on disk or not)."""


@dataclass
class _Totals:
    images: int = 0
    labelled: int = 0
    uncertain: int = 0
    persons: int = 0
    missing: int = 0
    skipped_no_person: int = 0
    missing_examples: list[str] = field(default_factory=list)
    per_class: dict[str, int] = field(default_factory=dict)
    source_ids: list[int] = field(default_factory=list)
    named: int = 0


def _annotation_files(root: Path) -> list[Path]:
    folder = root / "annotations"
    if not os.path.isdir(folder):
        raise DatasetError(f"{root}: not a COCO folder (no 'annotations' folder inside)")
    files = sorted(p for p in folder.glob("*.json") if p.name.startswith(_ANNOTATION_PREFIXES))
    if not files:
        raise DatasetError(f"{folder}: no captions_*.json, instances_*.json or person_keypoints_*.json files")
    return files


def _images_dir_for(root: Path, split: str | None) -> Path:
    candidates = [root / split] if split else []
    candidates += [root / "images", root / "val2017", root / "train2017"]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    looked = ", ".join(c.name for c in candidates)
    raise DatasetError(f"{root}: no images folder found (looked for {looked})")


def _groups(root: Path | None, images_dir: Path | None, files: list[CocoFile]) -> list[tuple[Path, list[CocoFile]]]:
    """Pair annotation files with the images folder they describe (a COCO root may hold train and val)."""
    if images_dir is not None:
        if not os.path.isdir(images_dir):
            raise DatasetError(f"{images_dir}: images folder not found")
        return [(images_dir, files)]
    if root is None:
        # Our own export records where its images are; otherwise images sit beside the JSON file.
        meta = files[0].data.get("harapp")
        hint = meta.get("images_dir") if isinstance(meta, dict) else None  # validated: text or None
        folder = Path(hint) if hint else files[0].path.parent
        # os.path.isdir, not Path.is_dir: a hint too long for the file system is "not found", not an OSError.
        if not os.path.isdir(folder):
            raise DatasetError(f"{files[0].path}: its images folder {folder} was not found; pass images_dir")
        return [(folder, files)]
    by_split: dict[str | None, list[CocoFile]] = {}
    for coco_file in files:
        by_split.setdefault(coco_file.split, []).append(coco_file)
    return [(_images_dir_for(root, split), group) for split, group in by_split.items()]


def _files_on_disk(folder: Path) -> set[str]:
    # One directory listing instead of 118k stat calls.
    try:
        with os.scandir(folder) as entries:
            return {entry.name for entry in entries}
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list the images folder ({exc.strerror or exc})") from exc


def _merged_images(files: list[CocoFile]) -> dict[int, dict[str, Any]]:
    images: dict[int, dict[str, Any]] = {}
    owner: dict[str, int] = {}
    for coco_file in files:
        for image in coco_file.data["images"]:
            known = images.get(image["id"])
            if known is None:
                other = owner.setdefault(image["file_name"], image["id"])
                if other != image["id"]:
                    raise DatasetError(
                        f"{coco_file.path}: image id {image['id']} has file_name {image['file_name']!r}, "
                        f"which another annotation file gives image id {other}"
                    )
                images[image["id"]] = image
                continue
            if known["file_name"] != image["file_name"]:
                raise DatasetError(
                    f"{coco_file.path}: image id {image['id']} is {image['file_name']!r} here but "
                    f"{known['file_name']!r} in another annotation file"
                )
            # Files describe one image each in part (an `activity` may sit in only one of them).
            for key, value in image.items():
                known.setdefault(key, value)
    return images


def _merged_persons(files: list[CocoFile]) -> list[dict[str, Any]]:
    """Person annotations of all instance/keypoint files, each annotation id once (keypoints win)."""
    wanted = person_category_ids(files)
    by_id: dict[Any, dict[str, Any]] = {}
    for coco_file in files:
        for ann in coco_file.data["annotations"]:
            if ann.get("category_id", 1) not in wanted:
                continue
            known = by_id.get(ann["id"])
            if known is None or (ann.get("keypoints") and not known.get("keypoints")):
                by_id[ann["id"]] = ann
    return list(by_id.values())


_Activity = tuple[str, Source, dict[str, int], "float | None"]
_UNLABELLED: _Activity = ("", "human", {}, None)


def _activity(entry: dict[str, Any]) -> _Activity | None:
    """The label our own COCO export wrote into an image or annotation entry: None when the entry has no
    `activity`, _UNLABELLED when it says the image had no label (so captions must not invent one).
    """
    activity = entry.get("activity")
    if not isinstance(activity, dict):
        return None
    if not isinstance(activity.get("label"), str) or not activity["label"]:
        return _UNLABELLED
    source = parse_source(activity.get("source")) or "human"
    votes = activity.get("votes")
    confidence = activity.get("confidence")
    return (
        activity["label"],
        source,
        dict(votes) if isinstance(votes, dict) else {},
        confidence if isinstance(confidence, (int, float)) else None,
    )


def _original_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """The image entry as the dataset gave it, without the fields our own export adds."""
    if "activity" not in entry and "captions" not in entry:
        return entry
    return {k: v for k, v in entry.items() if k not in ("activity", "captions")}


@dataclass
class _Pending:
    entry: dict[str, Any]
    captions: list[str]
    persons: list[dict[str, Any]]
    votes: dict[str, int]


class _Writer:
    """Writes one group's images, persons and labels in batches; lives inside the import's transaction."""

    BATCH = 5000

    def __init__(self, project: Project, totals: _Totals) -> None:
        self.project = project
        self.totals = totals
        self.classes: list[ClassInfo] = project.classes()
        self.names = {c.name for c in self.classes}
        # Labels already in the project matter only on a re-import; a fresh project skips the look-ups.
        self.had_images = project.count_images() > 0
        self.pending: list[_Pending] = []
        self.source_id = 0

    def _ensure_class(self, name: str) -> None:
        if name not in self.names:
            self.project.add_class(name)
            self.classes = self.project.classes()
            self.names.add(name)

    def add(self, source_id: int, entry: dict[str, Any], captions: list[str], persons: list[dict[str, Any]]) -> None:
        if source_id != self.source_id:
            self.flush()
            self.source_id = source_id
        votes = map_votes(tally(captions), self.classes) if captions else {}
        given = _activity(entry)
        if given is not None and given is not _UNLABELLED:
            self._ensure_class(given[0])
        for ann in persons:
            person_given = _activity(ann)
            if person_given is not None and person_given is not _UNLABELLED:
                self._ensure_class(person_given[0])
        self.pending.append(_Pending(entry, captions, persons, votes))
        if len(self.pending) >= self.BATCH:
            self.flush()

    def _label_row(self, image_id: int, item: _Pending, current: tuple[str, Source] | None) -> LabelRow | None:
        """What the import sets on one image, or None to leave its label alone."""
        if current is not None and current[1] == "human":
            return None  # a person's correction is never overwritten by an import
        given = _activity(item.entry)
        if given is _UNLABELLED:
            return LabelRow(image_id, None, current[1]) if current is not None else None
        if given is not None:
            name, source, votes, confidence = given
            return LabelRow(image_id, name, source, votes, confidence)
        if current is not None and current[1] != "caption":
            return None  # caption labels replace only caption labels
        decision = decide(item.votes)
        if decision is None:
            # The captions no longer agree: drop an old caption label rather than keep a stale one.
            return LabelRow(image_id, None, "caption") if current is not None else None
        return LabelRow(image_id, decision, "caption", item.votes, item.votes[decision] / sum(item.votes.values()))

    def flush(self) -> None:
        if not self.pending:
            return
        items, self.pending = self.pending, []
        rows = [
            ImageRow(
                item.entry["file_name"],
                int(item.entry.get("width") or 0),
                int(item.entry.get("height") or 0),
                item.entry["id"],
                item.captions,
                item.votes,
                _original_entry(item.entry),
            )
            for item in items
        ]
        image_ids = self.project.upsert_images(self.source_id, rows)
        current = self.project.current_labels(image_ids) if self.had_images else {}
        label_rows = []
        totals = self.totals
        for image_id, item in zip(image_ids, items, strict=True):
            old = current.get(image_id)
            row = self._label_row(image_id, item, old)
            if row is not None:
                label_rows.append(row)
            final = row.class_name if row is not None else (old[0] if old else None)
            totals.images += 1
            totals.persons += len(item.persons)
            if final is not None:
                totals.labelled += 1
                totals.per_class[final] = totals.per_class.get(final, 0) + 1
            elif item.votes:
                totals.uncertain += 1
        self.project.apply_labels(label_rows)
        person_rows = [
            PersonRow(image_id, tuple(ann["bbox"]), ann.get("keypoints") or None, ann.get("area"), ann["id"])
            for image_id, item in zip(image_ids, items, strict=True)
            for ann in item.persons
        ]
        person_ids = self.project.add_persons(person_rows)
        for person_id, person_row, ann in zip(
            person_ids, person_rows, (a for item in items for a in item.persons), strict=True
        ):
            given = _activity(ann)
            if given is not None and given is not _UNLABELLED:
                self.project.set_label(person_row.image_id, given[0], given[1], person_id=person_id, reason="import")


def _import_group(
    project: Project,
    writer: _Writer,
    images_dir: Path,
    files: list[CocoFile],
    all_images: bool,
    progress: Progress | None,
) -> None:
    totals = writer.totals
    images = _merged_images(files)
    caption_files = [f for f in files if f.kind == CAPTIONS]
    person_files = [f for f in files if f.kind != CAPTIONS]
    captions = build_index([], [a for f in caption_files for a in f.data["annotations"]]).imgToAnns
    persons = build_index([], _merged_persons(person_files)).imgToAnns
    on_disk = _files_on_disk(images_dir)

    def present(name: str) -> bool:
        # os.path.isfile, not Path.is_file: a name too long for the file system is absent, not an OSError.
        return name in on_disk if "/" not in name else os.path.isfile(images_dir / name)

    def in_scope(image_id: int, texts: list[str]) -> bool:
        if all_images:
            return True
        if person_files:
            return image_id in persons
        return any(mentions_person(text) for text in texts)

    source_id = project.add_source(
        "coco", images_dir, {"annotation_files": [str(f.path) for f in files], "all_images": all_images}
    )
    totals.source_ids.append(source_id)
    missing = 0
    todo = sorted(images)
    for done, image_id in enumerate(todo, 1):
        entry = images[image_id]
        if not present(entry["file_name"]):
            missing += 1
            if len(totals.missing_examples) < MISSING_EXAMPLES:
                totals.missing_examples.append(entry["file_name"])
        else:
            texts = [a["caption"] for a in captions.get(image_id, ())]
            if not texts and entry.get("captions"):
                # Our own export carries the captions in the image entry (validated: a list of texts).
                texts = list(entry["captions"])
            if in_scope(image_id, texts):
                writer.add(source_id, entry, texts, persons.get(image_id, []))
            else:
                totals.skipped_no_person += 1
        if progress is not None and (done % _PROGRESS_EVERY == 0 or done == len(todo)):
            progress("importing", done, len(todo))
    writer.flush()
    totals.missing += missing
    totals.named += len(images)
    details = project.sources()
    mine = next(s["details"] for s in details if s["id"] == source_id)
    project.update_source_details(source_id, {**mine, "missing": missing, "images": len(images)})


def import_coco(
    project: Project,
    root: Path | None = None,
    *,
    images_dir: Path | None = None,
    annotation_files: Sequence[Path] = (),
    all_images: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import a COCO root (<root>/annotations, <root>/val2017 ...) or an images folder plus annotation files.

    By default only images with a person annotation (or, without instance/keypoint files, a caption that
    mentions a person) are imported; `all_images` imports every image found on disk.
    """
    root = Path(root) if root is not None else None
    images_dir = Path(images_dir) if images_dir is not None else None
    if root is None and images_dir is None and not annotation_files:
        raise DatasetError("nothing to import: give a COCO folder, or an images folder and annotation files")
    if root is not None and not os.path.isdir(root):
        raise DatasetError(f"{root}: COCO folder not found")
    paths = [Path(p) for p in annotation_files] or _annotation_files(root)  # type: ignore[arg-type]
    files: list[CocoFile] = []
    for index, path in enumerate(paths):
        if progress is not None:
            progress("reading annotations", index, len(paths))
        files.append(read_coco_file(path))
    if progress is not None:
        progress("reading annotations", len(paths), len(paths))
    groups = _groups(root, images_dir, files)
    exported_classes = [
        name
        for f in files
        if isinstance(f.data.get("harapp"), dict)
        for name in f.data["harapp"].get("classes") or []
        if isinstance(name, str)
    ]
    # A harapp export lists exactly the images it labelled, persons or not.
    all_images = all_images or any(isinstance(f.data.get("harapp"), dict) for f in files)
    totals = _Totals()
    with project.transaction():
        known = set(project.class_names())
        for name in exported_classes:
            if name not in known:
                project.add_class(name)
                known.add(name)
        writer = _Writer(project, totals)
        for folder, group in groups:
            _import_group(project, writer, folder, group, all_images, progress)
    return ImportReport(
        images=totals.images,
        labelled=totals.labelled,
        uncertain=totals.uncertain,
        persons=totals.persons,
        missing=totals.missing,
        missing_examples=tuple(totals.missing_examples),
        skipped_no_person=totals.skipped_no_person,
        per_class=dict(sorted(totals.per_class.items())),
        source_id=totals.source_ids[0] if totals.source_ids else None,
        source_ids=tuple(totals.source_ids),
        orphan_annotations=sum(f.orphans for f in files),
        named=totals.named,
    )
