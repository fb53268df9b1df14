"""Column-wise reads for views over every image of a project (the gallery), built for 100k-image projects.

An ImageRecord per image costs three JSON decodes, a Path and a dataclass: 6 s and 350 MB for 100k images. The
gallery needs a few small values per image to paint, filter and sort, so these reads return numpy arrays and
flat lists in id order, decoded in SQL where SQLite can do it (the uncertain flag sums the caption votes with
json_each), and leave the rest (captions, class probabilities) as the JSON text the store holds, for the
caller to decode for the few rows it shows.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harapp.core.store.base import ProjectBase, id_chunks
from harapp.core.types import SOURCES, Box

NO_CODE = -1
"""The code of 'no value' in a code column (no label, no label source, no prediction)."""

_IMAGE_COLUMNS = """
    SELECT i.id, i.source_id, i.rel_path, i.captions, l.class_id, l.source,
           l.id IS NULL AND i.votes != '{}' AND (SELECT SUM(value) FROM json_each(i.votes)) > 0
    FROM images i LEFT JOIN labels l ON l.image_id = i.id AND l.person_id IS NULL
"""


@dataclass(frozen=True)
class ImageColumns:
    """Per-image values in ascending id order; row k of every column belongs to image ``ids[k]``."""

    ids: npt.NDArray[np.int64]
    roots: tuple[str, ...]
    """The import sources' folders; an image's file is ``Path(roots[root_index[k]]) / rel_paths[k]``."""
    root_index: npt.NDArray[np.int32]
    rel_paths: list[str]
    captions_json: list[str]
    """Captions as the store holds them (a JSON list of texts): decoded only for the images a view shows."""
    class_names: tuple[str, ...]
    """The project's classes in their order; ``labels`` holds positions in it."""
    labels: npt.NDArray[np.int16]
    """The image-level label's class position, or NO_CODE."""
    sources: npt.NDArray[np.int8]
    """The image-level label's source as a position in harapp.core.types.SOURCES, or NO_CODE."""
    uncertain: npt.NDArray[np.bool_]
    """No image-level label although captions voted (ImageRecord.uncertain)."""

    def __len__(self) -> int:
        return len(self.ids)

    def paths(self) -> list[Path]:
        """Every image's file (ImageRecord.path), one Path per folder joined with each relative path."""
        roots = [Path(root) for root in self.roots]
        return [roots[k] / rel for k, rel in zip(self.root_index.tolist(), self.rel_paths, strict=True)]


@dataclass(frozen=True)
class PredictionColumns:
    """One model's stored predictions in ascending image id order."""

    ids: npt.NDArray[np.int64]
    class_names: tuple[str, ...]
    """The predicted classes that occur; ``classes`` holds positions in it."""
    classes: npt.NDArray[np.int16]
    confidence: npt.NDArray[np.float64]
    """The probability of the predicted class (StoredPrediction.confidence)."""
    probabilities_json: list[str]
    """Every class's probability as the store holds it (a JSON object), decoded when asked for."""

    def __len__(self) -> int:
        return len(self.ids)


class ColumnsMixin(ProjectBase):
    def image_columns(self, ids: Iterable[int] | None = None) -> ImageColumns:
        """Every image (or the given ones that exist) as columns, in one read transaction."""
        with self._read():
            roots = dict(self._conn.execute("SELECT id, root FROM sources ORDER BY id").fetchall())
            classes = self._conn.execute("SELECT id, name FROM classes ORDER BY position, id").fetchall()
            if ids is None:
                rows = self._conn.execute(f"{_IMAGE_COLUMNS} ORDER BY i.id").fetchall()
            else:
                rows = []
                for chunk, marks in id_chunks(ids):
                    rows += self._conn.execute(f"{_IMAGE_COLUMNS} WHERE i.id IN ({marks}) ORDER BY i.id", chunk)
        return _image_columns(rows, roots, classes)

    def person_boxes(self) -> dict[int, tuple[Box, ...]]:
        """Image id -> its persons' boxes in id order (Person.box of Project.persons), for images that have any;
        one query instead of one per image."""
        rows = self._conn.execute("SELECT image_id, x, y, w, h FROM persons ORDER BY image_id, id")
        return {
            image_id: tuple((x, y, w, h) for _, x, y, w, h in group)
            for image_id, group in itertools.groupby(rows, key=operator.itemgetter(0))
        }

    def prediction_columns(self, model_id: int) -> PredictionColumns:
        """A model's predictions (Project.predictions) as columns: no JSON is decoded."""
        rows = self._conn.execute(
            "SELECT image_id, class_name, confidence, probs FROM predictions WHERE model_id = ? ORDER BY image_id",
            (model_id,),
        ).fetchall()
        ids, names, confidence, probabilities = _transpose(rows, 4)
        distinct = tuple(dict.fromkeys(names))
        code = {name: k for k, name in enumerate(distinct)}
        return PredictionColumns(
            ids=np.array(ids, dtype=np.int64),
            class_names=distinct,
            classes=np.array([code[name] for name in names], dtype=np.int16),
            confidence=np.array(confidence, dtype=np.float64),
            probabilities_json=list(probabilities),
        )


def _transpose(rows: list[Any], width: int) -> list[tuple[Any, ...]]:
    # zip(*rows) transposes in C; an empty result still needs its columns.
    return list(zip(*rows, strict=True)) if rows else [()] * width


def _image_columns(rows: list[Any], roots: dict[int, str], classes: list[tuple[int, str]]) -> ImageColumns:
    ids, source_ids, rel_paths, captions, class_ids, sources, uncertain = _transpose(rows, 7)
    root_ids = list(roots)
    root_position = {source_id: k for k, source_id in enumerate(root_ids)}
    class_position: dict[int | None, int] = {class_id: k for k, (class_id, _) in enumerate(classes)}
    class_position[None] = NO_CODE  # no label
    source_position: dict[str | None, int] = {source: k for k, source in enumerate(SOURCES)}
    source_position[None] = NO_CODE
    return ImageColumns(
        ids=np.array(ids, dtype=np.int64),
        roots=tuple(roots[source_id] for source_id in root_ids),
        root_index=np.array([root_position[s] for s in source_ids], dtype=np.int32),
        rel_paths=list(rel_paths),
        captions_json=list(captions),
        class_names=tuple(name for _, name in classes),
        labels=np.array([class_position[c] for c in class_ids], dtype=np.int16),
        sources=np.array([source_position[s] for s in sources], dtype=np.int8),
        uncertain=np.array([bool(u) for u in uncertain], dtype=np.bool_),
    )
