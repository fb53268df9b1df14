"""Images, their persons and the import sources they came from."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harapp.core.errors import LabelError
from harapp.core.missing_files import MissingFiles, absent, find_missing
from harapp.core.store.base import dumps, id_chunks, inserted_id, loads, now
from harapp.core.store.bulk import BulkMixin, ImageRow, PersonRow
from harapp.core.types import Box, ImageMatch, ImageRecord, Label, Person

IMAGE_COLUMNS = """
    i.id, s.root, i.rel_path, i.width, i.height, i.coco_id, i.captions, i.votes,
    c.name, l.source, l.votes, l.confidence, l.updated_at
"""
IMAGE_FROM = """
    FROM images i JOIN sources s ON s.id = i.source_id
    LEFT JOIN labels l ON l.image_id = i.id AND l.person_id IS NULL
    LEFT JOIN classes c ON c.id = l.class_id
"""


class ImagesMixin(BulkMixin):
    # -- images and persons ----------------------------------------------------------------------------------

    def add_source(self, kind: str, root: Path, details: dict[str, Any] | None = None) -> int:
        """Record an import's images folder; an import of the same kind and folder reuses its row."""
        root_text = str(Path(root).resolve())
        with self._write() as conn:
            row = conn.execute("SELECT id FROM sources WHERE kind = ? AND root = ?", (kind, root_text)).fetchone()
            if row:
                conn.execute(
                    "UPDATE sources SET details = ?, imported_at = ? WHERE id = ?",
                    (dumps(details or {}), now(), row[0]),
                )
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO sources (kind, root, details, imported_at) VALUES (?, ?, ?, ?)",
                (kind, root_text, dumps(details or {}), now()),
            )
            return inserted_id(cur)

    def missing_files(self) -> MissingFiles:
        """The imported photos that are no longer on disk (see harapp.core.missing_files for the cost)."""
        rows = self._conn.execute(
            "SELECT i.id, s.root, i.rel_path FROM images i JOIN sources s ON s.id = i.source_id ORDER BY i.id"
        ).fetchall()
        # Plain strings (roots are stored resolved, rel_paths as POSIX relative paths): see missing_files.absent.
        return find_missing((image_id, os.path.join(root, rel)) for image_id, root, rel in rows)

    def missing_by_source(self) -> dict[int, tuple[int, int]]:
        """Source id -> (photos missing on disk, photos), for every import source of the project."""
        rows = self._conn.execute(
            "SELECT s.id, s.root, i.rel_path FROM sources s LEFT JOIN images i ON i.source_id = s.id ORDER BY s.id"
        ).fetchall()
        with_images = [(sid, os.path.join(root, rel)) for sid, root, rel in rows if rel is not None]
        flags = absent([path for _, path in with_images])
        counts: dict[int, tuple[int, int]] = {sid: (0, 0) for sid, _, _ in rows}
        for (sid, _), gone in zip(with_images, flags, strict=True):
            missing, total = counts[sid]
            counts[sid] = (missing + gone, total + 1)
        return counts

    def source_files_under(self, source_id: int, root: Path) -> tuple[int, int]:
        """How many of a source's photos exist under another folder: (found, total), before re-rooting it."""
        rels = [r[0] for r in self._conn.execute("SELECT rel_path FROM images WHERE source_id = ?", (source_id,))]
        flags = absent([Path(root) / rel for rel in rels])
        return len(rels) - sum(flags), len(rels)

    def relocate_source(self, source_id: int, new_root: Path) -> None:
        """Point an import at the folder its photos moved to; labels, persons and history stay as they are."""
        root_text = str(Path(new_root).resolve())
        if not Path(root_text).is_dir():
            raise LabelError(f"{new_root}: no such folder")
        with self._write() as conn:
            row = conn.execute("SELECT kind FROM sources WHERE id = ?", (source_id,)).fetchone()
            if row is None:
                raise LabelError(f"{self.path}: no import source with id {source_id}")
            other = conn.execute(
                "SELECT id FROM sources WHERE kind = ? AND root = ? AND id != ?", (row[0], root_text, source_id)
            ).fetchone()
            if other is not None:
                raise LabelError(f"{new_root}: another import of this project (source {other[0]}) already uses it")
            conn.execute("UPDATE sources SET root = ? WHERE id = ?", (root_text, source_id))

    def update_source_details(self, source_id: int, details: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute("UPDATE sources SET details = ? WHERE id = ?", (dumps(details), source_id))

    def sources(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT id, kind, root, details, imported_at FROM sources ORDER BY id")
        return [{"id": r[0], "kind": r[1], "root": r[2], "details": loads(r[3], {}), "imported_at": r[4]} for r in rows]

    def upsert_image(
        self,
        source_id: int,
        rel_path: str,
        width: int,
        height: int,
        coco_id: int | None = None,
        captions: Sequence[str] = (),
        votes: dict[str, int] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Add an image, or refresh its annotations when (source, rel_path) is already there."""
        row = ImageRow(rel_path, width, height, coco_id, tuple(captions), dict(votes or {}), dict(extra or {}))
        return self.upsert_images(source_id, [row])[0]

    def add_person(
        self,
        image_id: int,
        box: Box,
        keypoints: Sequence[float] | None = None,
        area: float | None = None,
        coco_id: int | None = None,
    ) -> int:
        """Add a person; one with the same COCO annotation id in the image is updated instead."""
        return self.add_persons([PersonRow(image_id, box, keypoints, area, coco_id)])[0]

    def image_extras(self) -> dict[int, dict[str, Any]]:
        """The original dataset entry of every image (COCO fields harapp does not use), for exports."""
        return {r[0]: loads(r[1], {}) for r in self._conn.execute("SELECT id, extra FROM images")}

    def persons(self, image_id: int) -> list[Person]:
        rows = self._conn.execute(
            "SELECT id, image_id, coco_id, x, y, w, h, keypoints, area FROM persons WHERE image_id = ? ORDER BY id",
            (image_id,),
        )
        return [
            Person(r[0], r[1], r[2], (r[3], r[4], r[5], r[6]), tuple(json.loads(r[7])) if r[7] else None, r[8])
            for r in rows
        ]

    def _image_from_row(self, r: Sequence[Any]) -> ImageRecord:
        votes = loads(r[7], {})
        label = None
        if r[9] is not None:
            label = Label(r[0], None, r[8], r[9], loads(r[10], {}), r[11], r[12])
        return ImageRecord(
            id=r[0],
            path=Path(r[1]) / r[2],
            rel_path=r[2],
            width=r[3],
            height=r[4],
            coco_id=r[5],
            captions=tuple(loads(r[6], [])),
            votes=votes,
            label=label,
            uncertain=label is None and sum(votes.values()) > 0,
        )

    def image(self, image_id: int) -> ImageRecord:
        row = self._conn.execute(f"SELECT {IMAGE_COLUMNS} {IMAGE_FROM} WHERE i.id = ?", (image_id,)).fetchone()
        if row is None:
            raise LabelError(f"{self.path}: no image with id {image_id}")
        return self._image_from_row(row)

    def images(self, ids: Iterable[int] | None = None) -> list[ImageRecord]:
        """All images (or the given ones) in id order, in one query: the gallery loads 10k rows at once."""
        if ids is None:
            rows = self._conn.execute(f"SELECT {IMAGE_COLUMNS} {IMAGE_FROM} ORDER BY i.id").fetchall()
            return [self._image_from_row(r) for r in rows]
        records: list[ImageRecord] = []
        with self._read():  # one snapshot across the chunks
            for chunk, marks in id_chunks(ids):
                query = f"SELECT {IMAGE_COLUMNS} {IMAGE_FROM} WHERE i.id IN ({marks}) ORDER BY i.id"
                records += [self._image_from_row(r) for r in self._conn.execute(query, chunk)]
        return records

    def image_ids(self) -> list[int]:
        return [r[0] for r in self._conn.execute("SELECT id FROM images ORDER BY id")]

    def count_images(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def find_image(self, ref: str | int) -> int:
        """Resolve a user's reference to an image id (see resolve_image)."""
        return self.resolve_image(ref).image_id

    def resolve_image(self, ref: str | int) -> ImageMatch:
        """Resolve a reference: '#12' (the project's id), 'coco:139' (the COCO id), a bare number (the
        project's id first, then the COCO id; the match says so when the other reading names another image),
        a relative path or a file name."""
        text = str(ref).strip()
        conn = self._conn
        explicit = _EXPLICIT_ID.fullmatch(text)
        if explicit is not None:
            kind, number = explicit.group(1).lower(), int(explicit.group(2))
            column = "id" if kind == "#" else "coco_id"
            ids = [r[0] for r in conn.execute(f"SELECT id FROM images WHERE {column} = ? LIMIT 3", (number,))]
            what = f"image #{number}" if kind == "#" else f"COCO id {number}"
            if not ids:
                raise LabelError(f"{self.path}: no image with {what}")
            if len(ids) > 1:
                raise LabelError(f"{self.path}: {what} matches several images (#{ids[0]}, #{ids[1]}, ...); give #ID")
            return ImageMatch(int(ids[0]))
        if text.isdigit() and len(text) < 19:
            number = int(text)
            by_id = conn.execute("SELECT id FROM images WHERE id = ?", (number,)).fetchone()
            by_coco = [r[0] for r in conn.execute("SELECT id FROM images WHERE coco_id = ? LIMIT 3", (number,))]
            if by_id is not None:
                others = [i for i in by_coco if i != by_id[0]]
                note = (
                    f"{text} read as image #{text}; COCO id {text} is image #{others[0]} (write coco:{text} for it)"
                    if others
                    else ""
                )
                return ImageMatch(int(by_id[0]), note)
            if len(by_coco) == 1:
                return ImageMatch(int(by_coco[0]), f"{text} read as COCO id {text} (image #{by_coco[0]})")
            if len(by_coco) > 1:
                raise LabelError(f"{self.path}: COCO id {text} matches several images; give #ID or the file name")
        queries: list[tuple[str, tuple[str, ...]]] = [
            ("SELECT id FROM images WHERE rel_path = ?", (text,)),
            (
                "SELECT id FROM images WHERE rel_path = ? OR rel_path LIKE ? ESCAPE '\\'",
                (text, "%/" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")),
            ),
        ]
        for sql, args in queries:
            rows = conn.execute(sql, args).fetchall()
            if len(rows) == 1:
                return ImageMatch(int(rows[0][0]))
            if len(rows) > 1:
                raise LabelError(f"{self.path}: {text!r} matches {len(rows)} images; give #ID or the full path")
        raise LabelError(f"{self.path}: no image matches {text!r} (give #ID, coco:ID, a file name or a path)")


_EXPLICIT_ID = re.compile(r"(#|coco:)\s*(\d{1,18})", re.IGNORECASE)
