"""What the gallery model holds per image, as columns in image id order: the store's image columns (label
columns updated in place by edits), the active model's predictions and the guided-curation scores. No Qt here:
gallery_model adapts these to Qt, gallery_filters filters and sorts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from harapp.core.store.columns import NO_CODE, ImageColumns, PredictionColumns
from harapp.core.types import LabelQuality, StoredPrediction
from harapp.gui.gallery_filters import Mask


def margin_uncertainty(confidence: float, probabilities: dict[str, float]) -> float:
    """1 - (top probability - second probability); with no probabilities stored, the confidence is the top."""
    ranked = sorted((float(p) for p in probabilities.values()), reverse=True) if probabilities else [confidence]
    second = ranked[1] if len(ranked) > 1 else 0.0
    return 1.0 - (ranked[0] - second)


class EditableColumns:
    """ImageColumns whose label columns edits update in place (the store's columns are a read-only answer)."""

    def __init__(self, columns: ImageColumns) -> None:
        self.ids = columns.ids
        self.roots = list(columns.roots)
        self.root_index = columns.root_index.copy()
        self.rel_paths = list(columns.rel_paths)
        self.captions_json = list(columns.captions_json)
        self.class_names = columns.class_names
        self.labels = columns.labels.copy()
        self.sources = columns.sources.copy()
        self.uncertain = columns.uncertain.copy()

    def update(self, fresh: ImageColumns) -> bool:
        """Take fresh values for some of our images (an edit changes labels, not classes); True when a file
        name or captions changed too."""
        columns = np.searchsorted(self.ids, fresh.ids).tolist()
        root_of = [self._root(root) for root in fresh.roots]
        code_of = [self.class_names.index(n) if n in self.class_names else NO_CODE for n in fresh.class_names]
        texts_changed = False
        for k, column in enumerate(columns):
            label = int(fresh.labels[k])
            self.labels[column] = code_of[label] if label != NO_CODE else NO_CODE
            self.sources[column] = fresh.sources[k]
            self.uncertain[column] = fresh.uncertain[k]
            self.root_index[column] = root_of[int(fresh.root_index[k])]
            if (self.rel_paths[column], self.captions_json[column]) != (fresh.rel_paths[k], fresh.captions_json[k]):
                self.rel_paths[column], self.captions_json[column] = fresh.rel_paths[k], fresh.captions_json[k]
                texts_changed = True
        return texts_changed

    def _root(self, root: str) -> int:
        if root not in self.roots:
            self.roots.append(root)
        return self.roots.index(root)


def empty_columns() -> EditableColumns:
    return EditableColumns(
        ImageColumns(
            ids=np.zeros(0, np.int64),
            roots=(),
            root_index=np.zeros(0, np.int32),
            rel_paths=[],
            captions_json=[],
            class_names=(),
            labels=np.zeros(0, np.int16),
            sources=np.zeros(0, np.int8),
            uncertain=np.zeros(0, np.bool_),
        )  # fmt: skip
    )


class PredictionsByColumn:
    """The active model's predictions by column (NO_CODE / NaN where an image has none)."""

    def __init__(self, n: int, stored: PredictionColumns | None, columns: EditableColumns | None) -> None:
        self.class_names: tuple[str, ...] = stored.class_names if stored is not None else ()
        self.classes = np.full(n, NO_CODE, dtype=np.int16)
        self.confidence = np.full(n, np.nan)
        self.as_class = np.full(n, NO_CODE, dtype=np.int16)
        """The predicted class as a position in the project's class names; -2 for a class it does not have."""
        self._probabilities: list[str | None] = [None] * n
        self._uncertainty: npt.NDArray[np.float64] | None = None
        if stored is None or columns is None or not len(stored.ids):
            return
        found = np.searchsorted(columns.ids, stored.ids)
        inside = found < n
        inside[inside] = columns.ids[found[inside]] == stored.ids[inside]  # not predictions of deleted images
        found, kept = found[inside], np.flatnonzero(inside)
        self.classes[found] = stored.classes[kept]
        self.confidence[found] = stored.confidence[kept]
        for column, k in zip(found.tolist(), kept.tolist(), strict=True):
            self._probabilities[column] = stored.probabilities_json[k]
        names = columns.class_names  # fixed until the next reload: an edit changes labels, not classes
        code = np.array([names.index(n) if n in names else -2 for n in self.class_names] + [NO_CODE], np.int16)
        self.as_class = code[self.classes]  # NO_CODE (-1) picks the trailing NO_CODE

    def uncertainty(self) -> npt.NDArray[np.float64]:
        """Every column's margin uncertainty, decoded from the stored probabilities the first time it is asked."""
        if self._uncertainty is None:
            result = np.full(len(self._probabilities), np.nan)
            present = [c for c, text in enumerate(self._probabilities) if text is not None]
            if present:
                # One JSON parse for all rows, and numpy for the top two when every row has the same classes.
                parsed = json.loads(f"[{','.join(self._probabilities[c] or 'null' for c in present)}]")
                sizes = {len(p) if isinstance(p, dict) else 0 for p in parsed}
                if len(sizes) == 1 and min(sizes) >= 2:
                    values = np.array([list(p.values()) for p in parsed], dtype=np.float64)
                    top_two = -np.partition(-values, 1, axis=1)[:, :2]
                    result[present] = 1.0 - (top_two[:, 0] - top_two[:, 1])
                else:
                    pairs = zip(present, parsed, strict=True)
                    result[present] = [margin_uncertainty(float(self.confidence[c]), p or {}) for c, p in pairs]
            self._uncertainty = result
        return self._uncertainty

    def uncertainty_at(self, column: int) -> float | None:
        text = self._probabilities[column]
        return None if text is None else self._decode(column, text)

    def _decode(self, column: int, text: str) -> float:
        return margin_uncertainty(float(self.confidence[column]), json.loads(text) or {})


def image_quality(rows: Iterable[LabelQuality]) -> dict[int, LabelQuality]:
    """The image-level scores by image (person-level rows belong to the image view)."""
    return {r.image_id: r for r in rows if r.person_id is None}


def prediction_columns(predictions: dict[int, StoredPrediction]) -> PredictionColumns:
    ids = sorted(predictions)
    names = tuple(dict.fromkeys(predictions[i].class_name for i in ids))
    code = {name: k for k, name in enumerate(names)}
    return PredictionColumns(
        ids=np.array(ids, dtype=np.int64),
        class_names=names,
        classes=np.array([code[predictions[i].class_name] for i in ids], dtype=np.int16),
        confidence=np.array([predictions[i].confidence for i in ids], dtype=np.float64),
        probabilities_json=[json.dumps(predictions[i].probabilities) for i in ids],
    )


class ScoresByColumn:
    """The guided-curation scores by column. Whether a score is still fresh depends on the label the image has
    now, so the masks are made from the current label column each time they are asked for."""

    REVIEW, NEXT = 1, 2

    def __init__(self, quality: dict[int, LabelQuality], columns: EditableColumns) -> None:
        n = len(columns.ids)
        self.queue = np.zeros(n, np.int8)
        self.given = np.full(n, NO_CODE, np.int16)
        """The label the score was about, as a class position (-2: a class the project no longer has)."""
        self.score = np.full(n, np.nan)
        self.likely = np.zeros(n, np.bool_)
        if not quality or not n:
            return
        ids = np.fromiter(quality, dtype=np.int64, count=len(quality))
        found = np.searchsorted(columns.ids, ids)
        inside = found < n
        inside[inside] = columns.ids[found[inside]] == ids[inside]  # not scores of deleted images
        names = columns.class_names
        for column, image_id in zip(found[inside].tolist(), ids[inside].tolist(), strict=True):
            q = quality[image_id]
            self.queue[column] = self.REVIEW if q.queue == "review" else self.NEXT
            if q.given_class is not None:
                self.given[column] = names.index(q.given_class) if q.given_class in names else -2
            self.score[column] = q.score
            self.likely[column] = q.likely_wrong

    def fresh_review(self, labels: npt.NDArray[np.int16]) -> Mask:
        return (self.queue == self.REVIEW) & (self.given == labels) & (labels != NO_CODE)

    def fresh_next(self, labels: npt.NDArray[np.int16]) -> Mask:
        return (self.queue == self.NEXT) & (labels == NO_CODE)
