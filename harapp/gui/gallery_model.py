"""The gallery's Qt model: a thin in-memory adapter over the project store, plus the filter/sort proxy.

All rows are loaded with one query (``Project.images``) and kept as frozen tuples, so ``data()`` never touches
SQLite: scrolling 10k images must not issue a query per painted cell. Label edits refresh only the rows they
touched; a new active model reloads the prediction columns in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)

from harapp.core.store import Project
from harapp.core.types import ImageRecord, LabelQuality, StoredPrediction

AnyIndex = QModelIndex | QPersistentModelIndex
UNLABELLED = "\x00unlabelled"
"""Class filter value meaning 'images without a label' (no class can have this name)."""


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
    """Lower-cased file name and captions, precomputed so text filtering of 10k rows stays cheap."""
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
        return (
            self.quality_fresh
            and self.quality is not None
            and self.quality.queue == "review"
            and (self.quality.likely_wrong)
        )

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
            lines.append(f"label next: the model guesses {self.quality.suggested_class} (Enter accepts)")
        lines.extend(f"“{c}”" for c in self.captions[:5])
        return "\n".join(lines)


def row_from_record(record: ImageRecord) -> GalleryRow:
    label = record.label
    name = record.path.name
    return GalleryRow(
        image_id=record.id,
        path=record.path,
        name=name,
        label=label.class_name if label else None,
        source=label.source if label else None,
        uncertain=record.uncertain,
        captions=record.captions,
        search_text="\n".join((name, *record.captions)).lower(),
    )


def _with_quality(row: GalleryRow, quality: LabelQuality | None) -> GalleryRow:
    return row if row.quality == quality else replace(row, quality=quality)


def _with_prediction(row: GalleryRow, prediction: StoredPrediction | None) -> GalleryRow:
    if prediction is None:
        if row.prediction is None:
            return row
        return replace(row, prediction=None, confidence=None, model_uncertainty=None)
    confidence, probs = float(prediction.confidence), prediction.probabilities
    ranked = sorted((float(p) for p in probs.values()), reverse=True) if probs else [confidence]
    second = ranked[1] if len(ranked) > 1 else 0.0
    uncertainty = 1.0 - (ranked[0] - second)
    return replace(row, prediction=prediction.class_name, confidence=confidence, model_uncertainty=uncertainty)


class GalleryModel(QAbstractListModel):
    """One row per project image, in id order."""

    rows_reloaded = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._rows: list[GalleryRow] = []
        self._index: dict[int, int] = {}
        self._predictions: dict[int, StoredPrediction] = {}
        self._quality: dict[int, LabelQuality] = {}
        self._sort_key = "id"

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
        if self._project is None:
            self._rows, self._predictions, self._quality = [], {}, {}
        else:
            self._predictions = self._load_predictions()
            self._quality = _image_quality(self._project.label_quality())
            self._rows = [
                _with_quality(
                    _with_prediction(row_from_record(r), self._predictions.get(r.id)), self._quality.get(r.id)
                )
                for r in self._project.images()
            ]
            if self._sort_key != "id":  # the store returns id order
                self._rows.sort(key=SORT_KEYS[self._sort_key])
        self._index = {row.image_id: i for i, row in enumerate(self._rows)}
        self.endResetModel()
        self.rows_reloaded.emit()

    @property
    def sort_key(self) -> str:
        return self._sort_key

    def sort_rows(self, key: str) -> None:
        """Reorder the rows in Python (a 10k-row key sort takes milliseconds); selections survive.

        A proxy sorting by role would call data() from C++ for every comparison: about a second for 10k rows.
        """
        if key not in SORT_KEYS:
            raise ValueError(f"unknown sort key {key!r}; use one of {', '.join(SORT_KEYS)}")
        self._sort_key = key
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        kept_ids = [self._rows[i.row()].image_id for i in persistent]
        self._rows.sort(key=SORT_KEYS[key])
        self._index = {row.image_id: i for i, row in enumerate(self._rows)}
        self.changePersistentIndexList(persistent, [self.index(self._index[i]) for i in kept_ids])
        self.layoutChanged.emit()

    def _load_predictions(self) -> dict[int, StoredPrediction]:
        assert self._project is not None
        model = self._project.active_model()
        if model is None or self._project.stale_model_reason(model):
            return {}  # a model of other classes would mark every merged or renamed label as a disagreement
        return self._project.predictions(model.id)

    def reload_predictions(self) -> None:
        """The active model changed: swap the prediction columns without resetting (keeps the selection)."""
        if self._project is None or not self._rows:
            return
        self._predictions = self._load_predictions()
        self._rows = [_with_prediction(row, self._predictions.get(row.image_id)) for row in self._rows]
        self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))
        if self._sort_key != "id":
            self.sort_rows(self._sort_key)

    def set_predictions(self, predictions: dict[int, StoredPrediction]) -> None:
        """New predictions of the active model, read already (by a background job): no query here."""
        self._predictions = dict(predictions)
        self._swap(lambda row: _with_prediction(row, self._predictions.get(row.image_id)))

    def set_quality(self, rows: Iterable[LabelQuality]) -> None:
        """New label-quality scores, read already (by the background refresh): no query here."""
        self._quality = _image_quality(rows)
        self._swap(lambda row: _with_quality(row, self._quality.get(row.image_id)))

    def _swap(self, update: Callable[[GalleryRow], GalleryRow]) -> None:
        if not self._rows:
            return
        self._rows = [update(row) for row in self._rows]
        self.dataChanged.emit(self.index(0), self.index(len(self._rows) - 1))
        if self._sort_key != "id":
            self.sort_rows(self._sort_key)

    def quality_source(self) -> tuple[str, int] | None:
        """What scored the labels and at which label revision, or None without scores."""
        first = next(iter(self._quality.values()), None)
        return (first.scorer, first.label_revision) if first is not None else None

    def quality_counts(self) -> tuple[int, int]:
        """(images whose label is likely wrong, images in the label-next queue), with fresh scores."""
        return sum(1 for r in self._rows if r.likely_wrong), sum(1 for r in self._rows if r.in_queue)

    def refresh_images(self, image_ids: Iterable[int]) -> None:
        """Re-read the given images' labels after an edit and repaint just those rows."""
        if self._project is None:
            return
        wanted = [i for i in dict.fromkeys(image_ids) if i in self._index]
        if not wanted:
            return
        # One query either way: a handful by id, a big batch through the bulk loader.
        records = [self._project.image(i) for i in wanted] if len(wanted) <= 32 else self._project.images(wanted)
        for record in records:
            row = self._index[record.id]
            fresh = _with_prediction(row_from_record(record), self._predictions.get(record.id))
            self._rows[row] = _with_quality(fresh, self._quality.get(record.id))
            model_index = self.index(row)
            self.dataChanged.emit(model_index, model_index)

    # -- lookups -----------------------------------------------------------------------------------------

    def row_at(self, row: int) -> GalleryRow:
        return self._rows[row]

    def row_of(self, image_id: int) -> int:
        """The row of an image, or -1 when it is not in the model."""
        return self._index.get(image_id, -1)

    def image_row(self, image_id: int) -> GalleryRow | None:
        row = self._index.get(image_id)
        return None if row is None else self._rows[row]

    def label_counts(self) -> dict[str | None, int]:
        """Images per label (None: unlabelled), counted in memory."""
        counts: dict[str | None, int] = {}
        for row in self._rows:
            counts[row.label] = counts.get(row.label, 0) + 1
        return counts

    def image_ids(self) -> list[int]:
        """Image ids in the model's current order."""
        return [row.image_id for row in self._rows]

    # -- Qt model interface --------------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's own default
        return 0 if parent.isValid() else len(self._rows)

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names.update({int(role): QByteArray(role.name.lower().encode()) for role in Role})
        return names

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows) or index.column() != 0:
            return None
        row = self._rows[index.row()]
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


def _image_quality(rows: Iterable[LabelQuality]) -> dict[int, LabelQuality]:
    """The image-level scores by image (person-level rows belong to the image view)."""
    return {r.image_id: r for r in rows if r.person_id is None}


SORT_KEYS: dict[str, Callable[[GalleryRow], tuple]] = {
    "id": lambda r: (r.image_id,),
    # Images without a prediction go last in both model orders; ties keep id order.
    "confidence": lambda r: (r.confidence is None, r.confidence or 0.0, r.image_id),
    "uncertainty": lambda r: (r.model_uncertainty is None, -(r.model_uncertainty or 0.0), r.image_id),
    # Guided curation: the likeliest wrong labels first (low label-quality score), then every other label by
    # its score; images without a fresh score last.
    "likely-wrong": lambda r: (
        not r.likely_wrong,
        not (r.quality_fresh and r.quality is not None and r.quality.queue == "review"),
        r.quality.score if r.quality is not None else 1.0,
        r.image_id,
    ),
    # The label-next queue: the smallest margin between the model's two likeliest classes first.
    "label-next": lambda r: (not r.in_queue, r.quality.score if r.quality is not None else 1.0, r.image_id),
}
"""Sort choices: by id; least confident first; most uncertain (smallest top-2 margin) first; likeliest wrong
label first; most useful image to label first."""


@dataclass(frozen=True)
class GalleryFilter:
    class_name: str | None = None
    """None: any; UNLABELLED: only unlabelled images; else the label's class."""
    source: str | None = None
    uncertain_only: bool = False
    disagrees_only: bool = False
    review: str | None = None
    """Guided curation: 'likely-wrong' (labels the scores doubt) or 'label-next' (the queue); None: any."""
    text: str = ""
    image_ids: frozenset[int] | None = None
    """Restrict to these images (a confusion-matrix cell); None means no restriction."""

    def accepts(self, row: GalleryRow) -> bool:
        if self.image_ids is not None and row.image_id not in self.image_ids:
            return False
        if self.class_name is not None:
            wanted = None if self.class_name == UNLABELLED else self.class_name
            if row.label != wanted:
                return False
        if self.source is not None and row.source != self.source:
            return False
        if self.uncertain_only and not row.uncertain:
            return False
        if self.disagrees_only and not row.disagrees:
            return False
        if self.review == "likely-wrong" and not row.likely_wrong:
            return False
        if self.review == "label-next" and not row.in_queue:
            return False
        return not self.text or all(word in row.search_text for word in self.text.lower().split())


class GalleryProxy(QSortFilterProxyModel):
    """Filters (class, source, uncertain, model disagrees, caption text, id set) and sorting for the gallery."""

    filter_changed = Signal()

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._filter = GalleryFilter()
        # No sorting here (the source model orders its rows); dynamic filtering re-checks edited rows.
        self.setDynamicSortFilter(True)

    @property
    def sort_key(self) -> str:
        model = self.sourceModel()
        return model.sort_key if isinstance(model, GalleryModel) else "id"

    def set_filter(self, new_filter: GalleryFilter) -> None:
        if new_filter == self._filter:
            return
        if hasattr(self, "endFilterChange"):  # Qt >= 6.10; invalidateRowsFilter is deprecated there
            self.beginFilterChange()
            self._filter = new_filter
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:  # pragma: no cover - older Qt
            self._filter = new_filter
            self.invalidateRowsFilter()
        self.filter_changed.emit()

    def update_filter(self, **changes: Any) -> None:
        self.set_filter(replace(self._filter, **changes))

    def set_sort_key(self, key: str) -> None:
        model = self.sourceModel()
        if not isinstance(model, GalleryModel):
            raise TypeError("the gallery proxy sorts through its GalleryModel source")
        model.sort_rows(key)

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, GalleryModel):
            return True
        return self._filter.accepts(model.row_at(source_row))

    def image_id_at(self, row: int) -> int:
        return int(self.data(self.index(row, 0), Role.IMAGE_ID))

    def visible_image_ids(self) -> list[int]:
        return [self.image_id_at(r) for r in range(self.rowCount())]

    def proxy_row_of(self, image_id: int) -> int:
        model = self.sourceModel()
        if not isinstance(model, GalleryModel):
            return -1
        source_row = model.row_of(image_id)
        if source_row < 0:
            return -1
        return self.mapFromSource(model.index(source_row)).row()
