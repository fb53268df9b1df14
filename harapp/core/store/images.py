"""Images, their persons and the import sources they came from."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harapp.core.errors import LabelError
from harapp.core.store.base import dumps, id_chunks, inserted_id, loads, now
from harapp.core.store.bulk import BulkMixin, ImageRow, PersonRow
from harapp.core.types import Box, ImageRecord, Label, Person

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
        """Resolve a user's reference to an image: its id, COCO id, relative path or file name."""
        text = str(ref).strip()
        queries: list[tuple[str, Any]] = []
        if text.isdigit():
            queries += [
                ("SELECT id FROM images WHERE id = ?", int(text)),
                ("SELECT id FROM images WHERE coco_id = ?", int(text)),
            ]
        queries += [
            ("SELECT id FROM images WHERE rel_path = ?", text),
            (
                "SELECT id FROM images WHERE rel_path = ? OR rel_path LIKE ? ESCAPE '\\'",
                (text, "%/" + text.replace("%", "\\%").replace("_", "\\_")),
            ),
        ]
        for sql, arg in queries:
            args = arg if isinstance(arg, tuple) else (arg,)
            rows = self._conn.execute(sql, args).fetchall()
            if len(rows) == 1:
                return int(rows[0][0])
            if len(rows) > 1:
                raise LabelError(f"{self.path}: {text!r} matches {len(rows)} images; give the id or full path")
        raise LabelError(f"{self.path}: no image matches {text!r}")
