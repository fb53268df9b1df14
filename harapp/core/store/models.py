"""Trained models, their predictions and the cached embeddings of the ML engine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harapp.core.store.base import ProjectBase, dumps, id_chunks, inserted_id, loads, now
from harapp.core.types import ModelRecord, StoredPrediction


class ModelsMixin(ProjectBase):
    # -- models, predictions and embeddings ------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        kind: str,
        mode: str,
        path: Path,
        label_revision: int,
        metrics: dict[str, Any],
        config: dict[str, Any],
    ) -> int:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO models (name, kind, mode, path, created_at, label_revision, metrics, config)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, kind, mode, str(path), now(), label_revision, dumps(metrics), dumps(config)),
            )
            return inserted_id(cur)

    def update_model(
        self, model_id: int, path: Path, label_revision: int, metrics: dict[str, Any], config: dict[str, Any]
    ) -> Path | None:
        """Point a model at a retrained checkpoint of itself (after label corrections); returns the file it
        pointed at before, or None when there is no such model. Its stored predictions were the old
        checkpoint's, so they go: an image without a prediction is one still to predict."""
        with self._write() as conn:
            row = conn.execute("SELECT path FROM models WHERE id = ?", (model_id,)).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE models SET path = ?, created_at = ?, label_revision = ?, metrics = ?, config = ? WHERE id = ?",
                (str(path), now(), label_revision, dumps(metrics), dumps(config), model_id),
            )
            conn.execute("DELETE FROM predictions WHERE model_id = ?", (model_id,))
            return Path(row[0])

    def models(self) -> list[ModelRecord]:
        rows = self._conn.execute(
            "SELECT id, name, kind, mode, path, created_at, label_revision, metrics, config,"
            " active FROM models ORDER BY id"
        )
        return [
            ModelRecord(r[0], r[1], r[2], r[3], Path(r[4]), r[5], r[6], loads(r[7], {}), loads(r[8], {}), bool(r[9]))
            for r in rows
        ]

    def set_active_model(self, model_id: int | None) -> None:
        with self._write() as conn:
            # id = NULL is NULL, not false, so COALESCE keeps "no active model" a clean 0 everywhere.
            conn.execute("UPDATE models SET active = COALESCE(id = ?, 0)", (model_id,))

    def active_model(self) -> ModelRecord | None:
        return next((m for m in self.models() if m.active), None)

    def put_predictions(self, model_id: int, predictions: Mapping[int, StoredPrediction]) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO predictions (model_id, image_id, class_name, confidence, probs)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (model_id, image_id, p.class_name, float(p.confidence), dumps(dict(p.probabilities)))
                    for image_id, p in predictions.items()
                ],
            )

    def predictions(self, model_id: int) -> dict[int, StoredPrediction]:
        rows = self._conn.execute(
            "SELECT image_id, class_name, confidence, probs FROM predictions WHERE model_id = ?", (model_id,)
        )
        return {r[0]: StoredPrediction(r[1], r[2], loads(r[3], {})) for r in rows}

    def unpredicted_image_ids(self, model_id: int) -> list[int]:
        """Images the model has no stored prediction for (a prediction run was cancelled, images were added)."""
        rows = self._conn.execute(
            "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM predictions WHERE model_id = ?) ORDER BY id",
            (model_id,),
        )
        return [r[0] for r in rows]

    def get_embeddings(self, model_key: str, image_ids: Iterable[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        with self._read():
            for chunk, marks in id_chunks(image_ids):
                rows = self._conn.execute(
                    f"SELECT image_id, vector FROM embeddings WHERE model_key = ? AND image_id IN ({marks})",
                    (model_key, *chunk),
                )
                found.update((r[0], bytes(r[1])) for r in rows)
        return found

    def embedding_matrix(
        self, model_key: str, image_ids: Sequence[int], dtype: npt.DTypeLike = np.float32
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """The cached float32 vectors of these images as one matrix, row k for image_ids[k], converted to ``dtype``,
        and which rows had a vector (the others are zeros).

        Read in chunks straight into the matrix: get_embeddings holds every vector as bytes, so 100k vectors of
        2,626 float32 cost 1 GB there and another 1 GB once stacked; here the matrix is the only big buffer
        (half of it with float16). No columns (n x 0) when no image has a vector.
        """
        row_of: dict[int, list[int]] = {}
        for row, image_id in enumerate(image_ids):
            row_of.setdefault(int(image_id), []).append(row)
        found = np.zeros(len(image_ids), dtype=np.bool_)
        matrix: npt.NDArray[Any] | None = None
        with self._read():
            for chunk, marks in id_chunks(row_of):
                rows = self._conn.execute(
                    f"SELECT image_id, vector FROM embeddings WHERE model_key = ? AND image_id IN ({marks})",
                    (model_key, *chunk),
                )
                for image_id, blob in rows:
                    vector = np.frombuffer(blob, dtype=np.float32)
                    if matrix is None:
                        matrix = np.zeros((len(image_ids), len(vector)), dtype=dtype)
                    elif len(vector) != matrix.shape[1]:
                        raise ValueError(
                            f"{self.path}: cached vectors of {model_key!r} differ in length "
                            f"({len(vector)} and {matrix.shape[1]})"
                        )
                    for row in row_of[image_id]:
                        matrix[row] = vector
                        found[row] = True
        if matrix is None:
            matrix = np.zeros((len(image_ids), 0), dtype=dtype)
        return matrix, found

    def embedding_count(self, key_prefix: str) -> int:
        """How many images have cached features under the fullest model key starting with ``key_prefix``
        (e.g. 'resnet18:'): what a time estimate needs to know before the exact key is built with the model."""
        row = self._conn.execute(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM embeddings WHERE model_key LIKE ? ESCAPE '!'"
            " GROUP BY model_key)",
            (key_prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%",),
        ).fetchone()
        return int(row[0] or 0)

    def put_embeddings(self, model_key: str, vectors: dict[int, bytes]) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (model_key, image_id, vector) VALUES (?, ?, ?)",
                [(model_key, image_id, sqlite3.Binary(v)) for image_id, v in vectors.items()],
            )
