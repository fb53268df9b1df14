"""Label-quality scores of guided curation, kept in the project so a reopened project shows them at once."""

from __future__ import annotations

from collections.abc import Sequence

from harapp.core.store.base import ProjectBase, dumps, loads
from harapp.core.types import LabelQuality, ReviewQueue


class QualityMixin(ProjectBase):
    def put_label_quality(self, rows: Sequence[LabelQuality]) -> None:
        """Replace every stored score with these, in one transaction: a reader never sees half of a run."""
        with self._write() as conn:
            conn.execute("DELETE FROM label_quality")
            conn.executemany(
                "INSERT OR REPLACE INTO label_quality (image_id, person_id, queue, given_class, suggested_class,"
                " score, probs, likely_wrong, scorer, label_revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.image_id, r.person_id or 0, r.queue, r.given_class, r.suggested_class, float(r.score),
                     dumps(r.probabilities), int(r.likely_wrong), r.scorer, int(r.label_revision))
                    for r in rows
                ],
            )  # fmt: skip

    def label_quality(self, queue: ReviewQueue | None = None) -> list[LabelQuality]:
        """Stored scores, lowest score first (the likeliest wrong label, or the most useful image to label)."""
        sql = (
            "SELECT image_id, person_id, queue, given_class, suggested_class, score, probs, likely_wrong, scorer,"
            " label_revision FROM label_quality"
        )
        args: tuple[str, ...] = ()
        if queue is not None:
            sql += " WHERE queue = ?"
            args = (queue,)
        rows = self._conn.execute(sql + " ORDER BY queue, score, image_id, person_id", args).fetchall()
        return [
            LabelQuality(
                int(r[0]),
                int(r[1]) or None,
                r[2],
                r[3],
                r[4],
                float(r[5]),
                loads(r[6], {}),
                bool(r[7]),
                r[8],
                int(r[9]),
            )  # fmt: skip
            for r in rows
        ]

    def stale_label_quality(self, rows: Sequence[LabelQuality]) -> set[tuple[int, int | None]]:
        """The (image, person) keys whose label changed since they were scored: their score says nothing
        about the label they carry now."""
        current: dict[tuple[int, int | None], str] = {}
        for image_id, person_id, name in self._conn.execute(
            "SELECT l.image_id, l.person_id, c.name FROM labels l JOIN classes c ON c.id = l.class_id"
        ):
            current[(int(image_id), int(person_id) if person_id is not None else None)] = str(name)
        stale = set()
        for r in rows:
            key = (r.image_id, r.person_id)
            label = current.get(key)
            if (r.queue == "review" and label != r.given_class) or (r.queue == "next" and label is not None):
                stale.add(key)
        return stale
