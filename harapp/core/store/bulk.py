"""Batched writes for the importers: executemany batches, because per-row calls cost ~50 us each and
COCO train has 118k images. The per-row Project.upsert_image and add_person call these with one row.

Semantics match Project.set_label (history rows for every label change, a growing label revision).
Inside `project.transaction()` they join it.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from harapp.core.errors import LabelError
from harapp.core.store import classes as store_classes
from harapp.core.store.base import ProjectBase, dumps, inserted_id, now
from harapp.core.types import SOURCES, Box, Source

_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class ImageRow:
    rel_path: str
    width: int
    height: int
    coco_id: int | None
    captions: Sequence[str]
    votes: dict[str, int]
    extra: dict[str, Any]


@dataclass(frozen=True)
class PersonRow:
    image_id: int
    box: Box
    keypoints: Sequence[float] | None
    area: float | None
    coco_id: int | None


@dataclass(frozen=True)
class LabelRow:
    image_id: int
    class_name: str | None
    source: Source
    votes: dict[str, int] | None = None
    confidence: float | None = None
    person_id: int | None = None


def _person_ids(conn: sqlite3.Connection, image_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    found: dict[tuple[int, int], int] = {}
    unique = sorted(set(image_ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for person_id, image_id, coco_id in conn.execute(
            f"SELECT id, image_id, coco_id FROM persons WHERE coco_id IS NOT NULL AND image_id IN ({marks})", chunk
        ):
            found[(image_id, coco_id)] = person_id
    return found


class BulkMixin(ProjectBase):
    """Many rows per statement; the importers write through these."""

    def upsert_images(self, source_id: int, rows: Sequence[ImageRow]) -> list[int]:
        """Add or refresh images of one source; returns their ids in the order of `rows`."""
        stamp = now()
        values = []
        for row in rows:
            if row.rel_path.startswith("/") or ".." in row.rel_path.split("/"):
                raise LabelError(f"image path {row.rel_path!r} escapes its images folder")
            values.append(
                (
                    source_id,
                    row.rel_path,
                    row.width,
                    row.height,
                    row.coco_id,
                    _encode(list(row.captions)),
                    dumps(row.votes) if row.votes else "{}",
                    # The original entry keeps its key order; sorting 118k dicts would only cost time.
                    _encode(row.extra),
                    stamp,
                )
            )
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO images (source_id, rel_path, width, height, coco_id, captions, votes, extra, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source_id, rel_path) DO UPDATE SET width = excluded.width, height = excluded.height,"
                " coco_id = excluded.coco_id, captions = excluded.captions, votes = excluded.votes,"
                " extra = excluded.extra",
                values,
            )
            ids: dict[str, int] = {}
            wanted = [row.rel_path for row in rows]
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                ids.update(
                    conn.execute(
                        f"SELECT rel_path, id FROM images WHERE source_id = ? AND rel_path IN ({marks})",
                        (source_id, *chunk),
                    ).fetchall()
                )
        return [ids[path] for path in wanted]

    def add_persons(self, rows: Sequence[PersonRow]) -> list[int]:
        """Add persons; a row whose (image, COCO annotation id) exists updates it (keypoints kept if absent).

        Returns the person ids in the order of `rows`.
        """
        values = []
        for row in rows:
            x, y, w, h = (float(v) for v in row.box)
            area = float(row.area) if row.area is not None else w * h
            keypoints = json.dumps([float(v) for v in row.keypoints]) if row.keypoints else None
            values.append((x, y, w, h, keypoints, area))
        out: list[int | None] = [None] * len(rows)
        with self._write() as conn:
            known = _person_ids(conn, [r.image_id for r in rows])
            updates, inserts = [], []
            for row, (x, y, w, h, keypoints, area) in zip(rows, values, strict=True):
                key = (row.image_id, row.coco_id)
                if row.coco_id is not None and key in known:
                    updates.append((x, y, w, h, keypoints, area, known[key]))
                elif row.coco_id is not None:
                    inserts.append((row.image_id, row.coco_id, x, y, w, h, keypoints, area))
            conn.executemany(
                "UPDATE persons SET x=?, y=?, w=?, h=?, keypoints=COALESCE(?, keypoints), area=? WHERE id=?", updates
            )
            # A file may repeat an annotation id within one image; the first row wins, as with add_person.
            conn.executemany(
                "INSERT INTO persons (image_id, coco_id, x, y, w, h, keypoints, area) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                inserts,
            )
            known = _person_ids(conn, [r.image_id for r in rows])
            for index, (row, (x, y, w, h, keypoints, area)) in enumerate(zip(rows, values, strict=True)):
                if row.coco_id is not None:
                    out[index] = known[(row.image_id, row.coco_id)]
                else:
                    cur = conn.execute(
                        "INSERT INTO persons (image_id, coco_id, x, y, w, h, keypoints, area)"
                        " VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
                        (row.image_id, x, y, w, h, keypoints, area),
                    )
                    out[index] = inserted_id(cur)
        return [int(i) for i in out if i is not None]

    def current_labels(self, image_ids: Iterable[int]) -> dict[int, tuple[str, Source]]:
        """Image-level (class name, source) of the given images that have a label."""
        ids = list(image_ids)
        found: dict[int, tuple[str, Source]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for image_id, name, source in self._conn.execute(
                "SELECT l.image_id, c.name, l.source FROM labels l JOIN classes c ON c.id = l.class_id"
                f" WHERE l.person_id IS NULL AND l.image_id IN ({marks})",
                chunk,
            ):
                found[image_id] = (name, source)
        return found

    def apply_labels(self, rows: Sequence[LabelRow], reason: str = "import") -> int:
        """Apply image-level labels in one batch (history rows, one batch id); returns how many changed."""
        if not rows:
            return 0
        classes = {c.name: c.id for c in store_classes.list_classes(self._conn)}
        batch = uuid.uuid4().hex
        stamp = now()
        changed = 0
        with self._write() as conn:
            current = self.current_labels([r.image_id for r in rows])
            inserts, updates, deletes, history = [], [], [], []
            for row in rows:
                if row.person_id is not None:
                    raise LabelError("bulk labels are image-level; use Project.set_label for persons")
                if row.source not in SOURCES:
                    raise LabelError(f"unknown label source {row.source!r}; use one of {', '.join(SOURCES)}")
                old_class, old_source = current.get(row.image_id, (None, None))
                if row.class_name is None:
                    if old_class is None:
                        continue
                    deletes.append((row.image_id,))
                else:
                    class_id = classes.get(row.class_name)
                    if class_id is None:
                        raise LabelError(f"unknown class {row.class_name!r}; classes are: {', '.join(classes)}")
                    if old_class == row.class_name and old_source == row.source:
                        continue
                    values = (class_id, row.source, dumps(row.votes or {}), row.confidence, stamp)
                    if old_class is None:
                        inserts.append((row.image_id, *values, stamp))
                    else:
                        updates.append((*values, row.image_id))
                new_source = row.source if row.class_name else None
                history.append(
                    (stamp, row.image_id, None, old_class, row.class_name, old_source, new_source, reason, batch)
                )
                changed += 1
            conn.executemany("DELETE FROM labels WHERE image_id = ? AND person_id IS NULL", deletes)
            conn.executemany(
                "INSERT INTO labels (image_id, class_id, source, votes, confidence, updated_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
            conn.executemany(
                "UPDATE labels SET class_id = ?, source = ?, votes = ?, confidence = ?, updated_at = ?"
                " WHERE image_id = ? AND person_id IS NULL",
                updates,
            )
            conn.executemany(
                "INSERT INTO history (at, image_id, person_id, old_class, new_class, old_source, new_source, reason,"
                " batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                history,
            )
            if changed:
                conn.execute(
                    "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'label_revision'", (changed,)
                )
        return changed
