"""The gallery's filter proxy: which of the model's rows a view shows (the model itself sorts).

It stays a QSortFilterProxyModel: views lay out every row through the model's index(), which is C++ there
(12 ms per layout at 100k rows) and Python in a Python proxy model (150-400 ms).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Signal

from harapp.gui.gallery_filters import GalleryFilter, Mask, text_matches
from harapp.gui.gallery_model import GalleryModel, Role

AnyIndex = QModelIndex | QPersistentModelIndex


class GalleryProxy(QSortFilterProxyModel):
    """Filters (class, source, uncertain, model disagrees, caption text, id set) for the gallery; the model sorts.

    Which rows pass is computed for all rows at once with numpy (gallery_filters) and kept as a list, so
    filterAcceptsRow is a lookup: about a microsecond per row where Qt asks. A filter change is one layout
    change (QSortFilterProxyModel.invalidate); the incremental change signalled each run of rows hidden or
    shown and took 1-2 s at 100k images. GalleryView hands the current image over to a neighbour when a filter
    hides it, as Qt does for removed rows. Edits re-check just their rows (dynamic filtering).
    """

    filter_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._filter = GalleryFilter()
        self._accepted: list[bool] = []
        """Per model row: does it pass the filter."""
        self._text: tuple[str, int, Mask] | None = None
        """The text clause's answer per column: (text, the model's text generation, mask)."""
        self._before_change: npt.NDArray[np.int64] | None = None
        """While a filter change is signalled: the model rows shown before it, in proxy order."""
        self._source: GalleryModel | None = None
        # No sorting here (the source model orders its rows); dynamic filtering re-checks edited rows.
        self.setDynamicSortFilter(True)

    def setSourceModel(self, source: Any) -> None:
        old = self._source
        if old is not None:
            old.modelReset.disconnect(self._refilter)
            old.layoutChanged.disconnect(self._refilter)
            old.dataChanged.disconnect(self._refilter_rows)
        self._source = source if isinstance(source, GalleryModel) else None
        if self._source is not None:
            # Connected before QSortFilterProxyModel's own handlers, which then ask filterAcceptsRow.
            self._source.modelReset.connect(self._refilter)
            self._source.layoutChanged.connect(self._refilter)
            self._source.dataChanged.connect(self._refilter_rows)
        self._refilter()
        super().setSourceModel(source)

    @property
    def sort_key(self) -> str:
        return self._source.sort_key if self._source is not None else "id"

    def set_filter(self, new_filter: GalleryFilter) -> None:
        if new_filter == self._filter:
            return
        self._filter = new_filter
        self._before_change = np.flatnonzero(self._accepted).astype(np.int64)
        self._refilter()
        try:
            self.invalidate()
        finally:
            self._before_change = None
        self.filter_changed.emit()

    def update_filter(self, **changes: Any) -> None:
        self.set_filter(replace(self._filter, **changes))

    def set_sort_key(self, key: str) -> None:
        if self._source is None:
            raise TypeError("the gallery proxy sorts through its GalleryModel source")
        self._source.sort_rows(key)

    # -- which rows pass -----------------------------------------------------------------------------------

    def _refilter(self, *_args: object) -> None:
        model = self._source
        if model is None or not len(model.perm):
            self._accepted = []
            return
        text_mask = self._text_mask(model) if self._filter.text.strip() else None
        self._accepted = self._filter.mask(model, text_mask=text_mask)[model.perm].tolist()

    def _refilter_rows(self, top_left: QModelIndex, bottom_right: QModelIndex, *_roles: object) -> None:
        model = self._source
        if model is None or len(self._accepted) != len(model.perm):
            self._refilter()
            return
        rows = np.arange(top_left.row(), bottom_right.row() + 1)
        columns = model.perm[rows]
        text_mask = self._text_mask(model)[columns] if self._filter.text.strip() else None
        passed = self._filter.mask(model, columns, text_mask=text_mask).tolist()
        for row, ok in zip(rows.tolist(), passed, strict=True):
            self._accepted[row] = ok

    def _text_mask(self, model: GalleryModel) -> Mask:
        # The slow clause, and one an edit cannot change: kept until the text or the captions change.
        text = self._filter.text
        if self._text is None or self._text[:2] != (text, model.text_generation):
            self._text = (text, model.text_generation, text_matches(model.search_texts(), text))
        return self._text[2]

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:
        accepted = self._accepted
        return accepted[source_row] if source_row < len(accepted) else True

    def replacement_row(self, old_row: int) -> int:
        """During a filter change that hid the image at proxy row ``old_row``: the row now of the nearest image
        above it still shown, else of the nearest below; -1 when none is (what Qt does for removed rows)."""
        before = self._before_change
        if before is None or not 0 <= old_row < len(before):
            return -1
        accepted = np.asarray(self._accepted, dtype=np.bool_)
        new_row = np.cumsum(accepted) - 1
        above = before[:old_row][accepted[before[:old_row]]]
        if len(above):
            return int(new_row[above[-1]])
        below = before[old_row + 1 :][accepted[before[old_row + 1 :]]]
        return int(new_row[below[0]]) if len(below) else -1

    # -- lookups -------------------------------------------------------------------------------------------

    def image_id_at(self, row: int) -> int:
        return int(self.data(self.index(row, 0), Role.IMAGE_ID))

    def visible_image_ids(self) -> list[int]:
        model = self._source
        if model is None:
            return []
        shown = np.flatnonzero(self._accepted) if self._accepted else np.zeros(0, np.int64)
        return [int(i) for i in model.ids[model.perm[shown]].tolist()]

    def proxy_row_of(self, image_id: int) -> int:
        model = self._source
        if model is None:
            return -1
        source_row = model.row_of(image_id)
        if source_row < 0:
            return -1
        return self.mapFromSource(model.index(source_row)).row()
