"""The gallery's Qt model: a thin adapter over the project store (its filter proxy is gallery_proxy).

Built for 100k-image projects. The model loads the store's columns (numpy arrays and flat lists in id order,
one query) instead of an ImageRecord per image (6 s and 350 MB at 100k images), and makes a GalleryRow only
for the rows a view asks about (kept in a small cache), so ``data()`` never touches SQLite: scrolling must not
issue a query per painted cell. Label edits refresh only the rows they touched; a new active model reloads
the prediction columns in one query. Filters and sorts are numpy over those columns (gallery_filters).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from harapp.core.store import Project
from harapp.core.store.columns import NO_CODE
from harapp.core.types import SOURCES, LabelQuality, StoredPrediction
from harapp.gui.gallery_filters import SORT_KEYS, UNLABELLED, GalleryFilter, Mask, sorted_rows
from harapp.gui.gallery_storage import (
    EditableColumns,
    PredictionsByColumn,
    ScoresByColumn,
    empty_columns,
    image_quality,
    prediction_columns,
)

AnyIndex = QModelIndex | QPersistentModelIndex
__all__ = ["UNLABELLED", "SORT_KEYS", "GalleryFilter", "GalleryModel", "GalleryRow", "Role"]

ROW_CACHE = 4096
"""GalleryRows kept made: a few screens of the largest gallery, so painting never rebuilds them."""


class Role(IntEnum):
    IMAGE_ID = Qt.ItemDataRole.UserRole + 1
    PATH = Qt.ItemDataRole.UserRole + 2
    LABEL = Qt.ItemDataRole.UserRole + 3
    SOURCE = Qt.ItemDataRole.UserRole + 4
    UNCERTAIN = Qt.ItemDataRole.UserRole + 5
    PREDICTION = Qt.ItemDataRole.UserRole + 6
    DISAGREES = Qt.ItemDataRole.UserRole + 7
    CONFIDENCE = Qt.ItemDataRole.UserRole + 8
    MODEL_UNCERTAINTY = Qt.ItemDataRole.UserRole + 9
    CAPTIONS = Qt.ItemDataRole.UserRole + 10
    ROW = Qt.ItemDataRole.UserRole + 11
    SUGGESTION = Qt.ItemDataRole.UserRole + 12


@dataclass(frozen=True, slots=True)
class GalleryRow:
    image_id: int
    path: Path
    name: str
    label: str | None
    source: str | None
    uncertain: bool
    captions: tuple[str, ...]
    search_text: str
    """Lower-cased file name and captions: what the text filter searches."""
    prediction: str | None = None
    confidence: float | None = None
    """The model's probability for its predicted class."""
    model_uncertainty: float | None = None
    """1 - (top probability - second probability): near 1 when the model hesitates between two classes."""
    quality: LabelQuality | None = None
    """Guided curation's score of this image (harapp.ml.label_quality), as stored in the project."""

    @property
    def disagrees(self) -> bool:
        return self.prediction is not None and self.label is not None and self.prediction != self.label

    @property
    def quality_fresh(self) -> bool:
        """The score is about the label the image has now (a correction makes it stale until the refresh)."""
        q = self.quality
        if q is None:
            return False
        return (q.queue == "review" and q.given_class == self.label) or (q.queue == "next" and self.label is None)

    @property
    def likely_wrong(self) -> bool:
        q = self.quality
        return self.quality_fresh and q is not None and q.queue == "review" and q.likely_wrong

    @property
    def in_queue(self) -> bool:
        """Unlabelled, with the model's guess: in the label-next queue."""
        return self.quality_fresh and self.quality is not None and self.quality.queue == "next"

    @property
    def suggestion(self) -> str | None:
        """The label Enter gives: the suggested class of a likely wrong label, or the guess for an unlabelled
        image of the queue; None otherwise."""
        if self.likely_wrong or self.in_queue:
            assert self.quality is not None
            return self.quality.suggested_class
        return None

    def tooltip(self) -> str:
        lines = [f"#{self.image_id}  {self.name}"]
        lines.append(f"label: {self.label} ({self.source})" if self.label else "label: none")
        if self.uncertain:
            lines.append("uncertain: captions disagree or are too few")
        if self.prediction is not None:
            mark = "  (disagrees with label)" if self.disagrees else ""
            lines.append(f"model: {self.prediction} {100 * (self.confidence or 0):.0f}%{mark}")
        if self.likely_wrong and self.quality is not None:
            lines.append(f"likely mislabelled: suggested {self.quality.suggested_class} (Enter accepts)")
        elif self.in_queue and self.quality is not None:
            lines.append(f"label next: the label review guesses {self.quality.suggested_class} (Enter accepts)")
        lines.extend(f"“{c}”" for c in self.captions[:5])
        return "\n".join(lines)


def _search_text(name: str, captions: Sequence[str]) -> str:
    return "\n".join((name, *captions)).lower()


def _name(rel_path: str) -> str:
    return rel_path.rsplit("/", 1)[-1]  # Path(rel_path).name for the POSIX paths the store holds


class GalleryModel(QAbstractListModel):
    """One row per project image, in the order of its sort key (image id unless sorted).

    The columns stay in id order; ``perm`` maps a model row to its column, so sorting moves no data.
    """

    rows_reloaded = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._columns = empty_columns()
        self._predictions = PredictionsByColumn(0, None, None)
        self._quality: dict[int, LabelQuality] = {}
        """Image-level guided-curation scores by image id."""
        self._scores = ScoresByColumn({}, self._columns)
        self._sort_key = "id"
        self.perm: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        """Model row -> column (position in id order)."""
        self._row_of_column: npt.NDArray[np.int64] = np.zeros(0, np.int64)
        self._cache: OrderedDict[int, GalleryRow] = OrderedDict()
        """GalleryRows made, by column."""
        self._search: list[str] | None = None
        self.text_generation = 0
        """Changes whenever a row's search text may have changed, so callers know when to search again."""

    # -- loading -----------------------------------------------------------------------------------------

    @property
    def project(self) -> Project | None:
        return self._project

    def set_project(self, project: Project | None) -> None:
        self._project = project
        self.reload()

    def reload(self) -> None:
        """Read every row again in one query (after an import, a class merge, a new model)."""
        self.beginResetModel()
        self._columns = empty_columns() if self._project is None else EditableColumns(self._project.image_columns())
        self._predictions = self._load_predictions()
        self._quality = image_quality(self._project.label_quality()) if self._project is not None else {}
        self._scores = ScoresByColumn(self._quality, self._columns)
        self._cache.clear()
        self._search = None
        self.text_generation += 1
        self._set_perm(self._sorted_perm(self._sort_key))
        self.endResetModel()
        self.rows_reloaded.emit()

    def _load_predictions(self) -> PredictionsByColumn:
        none = PredictionsByColumn(len(self._columns.ids), None, None)
        if self._project is None:
            return none
        model = self._project.active_model()
        if model is None or self._project.stale_model_reason(model):
            # A model of other classes would mark every merged or renamed label as a disagreement.
            return none
        return PredictionsByColumn(len(self._columns.ids), self._project.prediction_columns(model.id), self._columns)

    @property
    def sort_key(self) -> str:
        return self._sort_key

    def sort_rows(self, key: str) -> None:
        """Reorder the rows by a SORT_KEYS entry (numpy: milliseconds for 100k rows); selections survive.

        A proxy sorting by role would call data() from C++ for every comparison: about a second for 10k rows.
        """
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}; use one of {', '.join(SORT_KEYS)}")
        self._sort_key = key
        perm = self._sorted_perm(key)
        if np.array_equal(perm, self.perm):
            return
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        columns = [int(self.perm[index.row()]) for index in persistent]
        self._set_perm(perm)
        self.changePersistentIndexList(persistent, [self.index(int(self._row_of_column[c])) for c in columns])
        self.layoutChanged.emit()

    def _sorted_perm(self, key: str) -> npt.NDArray[np.int64]:
        return sorted_rows(self, key, np.arange(len(self._columns.ids), dtype=np.int64))

    def _set_perm(self, perm: npt.NDArray[np.int64]) -> None:
        self.perm = perm
        self._row_of_column = np.empty_like(perm)
        self._row_of_column[perm] = np.arange(len(perm))

    def reload_predictions(self) -> None:
        """The active model changed: swap the prediction columns without resetting (keeps the selection)."""
        if self._project is None or not len(self._columns.ids):
            return
        self._predictions = self._load_predictions()
        self._cache.clear()
        self.dataChanged.emit(self.index(0), self.index(len(self._columns.ids) - 1))
        if self._sort_key != "id":
            self.sort_rows(self._sort_key)

    def set_predictions(self, predictions: dict[int, StoredPrediction]) -> None:
        """New predictions of the active model, read already (by a background job): no query here."""
        self._predictions = PredictionsByColumn(len(self._columns.ids), prediction_columns(predictions), self._columns)
        self._repaint_all()

    def set_quality(self, rows: Iterable[LabelQuality]) -> None:
        """New label-quality scores, read already (by the background refresh): no query here."""
        self._quality = image_quality(rows)
        self._scores = ScoresByColumn(self._quality, self._columns)
        self._repaint_all()

    def _repaint_all(self) -> None:
        self._cache.clear()
        if not len(self._columns.ids):
            return
        self.dataChanged.emit(self.index(0), self.index(len(self._columns.ids) - 1))
        if self._sort_key != "id":
            self.sort_rows(self._sort_key)

    def quality_source(self) -> tuple[str, int] | None:
        """What scored the labels and at which label revision, or None without scores."""
        first = next(iter(self._quality.values()), None)
        return (first.scorer, first.label_revision) if first is not None else None

    def quality_counts(self) -> tuple[int, int]:
        """(images whose label is likely wrong, images in the label-next queue), with fresh scores."""
        return int(self.likely_wrong().sum()), int(self.in_queue().sum())

    def refresh_images(self, image_ids: Iterable[int]) -> None:
        """Re-read the given images' labels after an edit and repaint just those rows."""
        if self._project is None:
            return
        columns = sorted({c for c in map(self._column_of, image_ids) if c >= 0})
        if not columns:
            return
        changed_captions = self._columns.update(self._project.image_columns(self._columns.ids[columns].tolist()))
        if changed_captions:
            self._search = None
            self.text_generation += 1
        for column in columns:
            self._cache.pop(column, None)
        rows = np.sort(self._row_of_column[columns])
        # One signal per run of adjacent rows: a proxy re-checks just the rows a signal names.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(rows, breaks):
            self.dataChanged.emit(self.index(int(run[0])), self.index(int(run[-1])))

    # -- columns, in id order (read by gallery_filters) ----------------------------------------------------

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        return self._columns.ids

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._columns.class_names

    @property
    def labels(self) -> npt.NDArray[np.int16]:
        return self._columns.labels

    @property
    def sources(self) -> npt.NDArray[np.int8]:
        return self._columns.sources

    @property
    def uncertain(self) -> npt.NDArray[np.bool_]:
        return self._columns.uncertain

    @property
    def confidence(self) -> npt.NDArray[np.float64]:
        return self._predictions.confidence

    def disagrees(self) -> Mask:
        as_class = self._predictions.as_class
        labels = self._columns.labels
        return (as_class != NO_CODE) & (labels != NO_CODE) & (as_class != labels)

    def model_uncertainty(self) -> npt.NDArray[np.float64]:
        return self._predictions.uncertainty()

    def review_scored(self) -> Mask:
        return self._scores.fresh_review(self._columns.labels)

    def likely_wrong(self) -> Mask:
        return self.review_scored() & self._scores.likely

    def in_queue(self) -> Mask:
        return self._scores.fresh_next(self._columns.labels)

    @property
    def quality_score(self) -> npt.NDArray[np.float64]:
        return self._scores.score

    def search_texts(self) -> list[str]:
        """Every image's search text, made on the first text search (0.3 s per 100k images) and kept."""
        if self._search is None:
            columns = self._columns
            self._search = [
                _search_text(_name(rel), json.loads(captions))
                for rel, captions in zip(columns.rel_paths, columns.captions_json, strict=True)
            ]
        return self._search

    # -- lookups -----------------------------------------------------------------------------------------

    def row_at(self, row: int) -> GalleryRow:
        if not 0 <= row < len(self.perm):
            raise IndexError(f"gallery row {row} out of range")
        column = int(self.perm[row])
        cached = self._cache.get(column)
        if cached is not None:
            self._cache.move_to_end(column)
            return cached
        made = self._make_row(column)
        self._cache[column] = made
        if len(self._cache) > ROW_CACHE:
            self._cache.popitem(last=False)
        return made

    def _make_row(self, column: int) -> GalleryRow:
        columns, predictions = self._columns, self._predictions
        rel = columns.rel_paths[column]
        name = _name(rel)
        captions = tuple(json.loads(columns.captions_json[column]))
        label, source = int(columns.labels[column]), int(columns.sources[column])
        made = GalleryRow(
            image_id=int(columns.ids[column]),
            path=Path(columns.roots[columns.root_index[column]]) / rel,
            name=name,
            label=columns.class_names[label] if label != NO_CODE else None,
            source=SOURCES[source] if source != NO_CODE else None,
            uncertain=bool(columns.uncertain[column]),
            captions=captions,
            search_text=_search_text(name, captions),
            quality=self._quality.get(int(columns.ids[column])),
        )
        predicted = int(predictions.classes[column])
        if predicted == NO_CODE:
            return made
        return replace(
            made,
            prediction=predictions.class_names[predicted],
            confidence=float(predictions.confidence[column]),
            model_uncertainty=predictions.uncertainty_at(column),
        )

    def _column_of(self, image_id: int) -> int:
        ids = self._columns.ids
        column = int(np.searchsorted(ids, image_id))
        return column if column < len(ids) and ids[column] == image_id else -1

    def row_of(self, image_id: int) -> int:
        """The row of an image, or -1 when it is not in the model."""
        column = self._column_of(image_id)
        return int(self._row_of_column[column]) if column >= 0 else -1

    def image_row(self, image_id: int) -> GalleryRow | None:
        row = self.row_of(image_id)
        return None if row < 0 else self.row_at(row)

    def label_counts(self) -> dict[str | None, int]:
        """Images per label (None: unlabelled), counted in memory."""
        names = self._columns.class_names
        counts = np.bincount(self._columns.labels.astype(np.int64) + 1, minlength=len(names) + 1)
        keys: list[str | None] = [None, *names]
        return {key: int(n) for key, n in zip(keys, counts.tolist(), strict=True) if n}

    def image_ids(self) -> list[int]:
        """Image ids in the model's current order."""
        return [int(i) for i in self._columns.ids[self.perm].tolist()]

    # -- Qt model interface --------------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's own default
        return 0 if parent.isValid() else len(self.perm)

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names.update({int(role): QByteArray(role.name.lower().encode()) for role in Role})
        return names

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.perm) or index.column() != 0:
            return None
        row = self.row_at(index.row())
        if role == Qt.ItemDataRole.DisplayRole:
            return row.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip()
        return _ROLE_GETTERS[role](row) if role in _ROLE_GETTERS else None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


_ROLE_GETTERS: dict[int, Any] = {
    Role.IMAGE_ID: lambda r: r.image_id,
    Role.PATH: lambda r: str(r.path),
    Role.LABEL: lambda r: r.label,
    Role.SOURCE: lambda r: r.source,
    Role.UNCERTAIN: lambda r: r.uncertain,
    Role.PREDICTION: lambda r: r.prediction,
    Role.DISAGREES: lambda r: r.disagrees,
    Role.CONFIDENCE: lambda r: r.confidence,
    Role.MODEL_UNCERTAINTY: lambda r: r.model_uncertainty,
    Role.CAPTIONS: lambda r: "\n".join(r.captions),
    Role.ROW: lambda r: r,
    Role.SUGGESTION: lambda r: r.suggestion,
}
