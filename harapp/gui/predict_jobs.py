"""Prediction jobs: classify dropped or pasted images with the active model.

Inputs cross into the worker as paths or encoded bytes; results come back as frozen PredictOutcome records
with the thumbnail as raw RGBA bytes (a QPixmap may only be made on the GUI thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtGui import QImage

from harapp.core.errors import HarappError
from harapp.core.types import Box
from harapp.gui.workers import Worker, error_message
from harapp.ml.views import needs_person

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageInput:
    """An in-memory image (pasted or dropped as data) carried across threads as encoded PNG bytes."""

    name: str
    png: bytes


def qimage_to_input(image: QImage, name: str = "<pasted image>") -> ImageInput:
    """Encode a QImage on the GUI thread so the worker gets immutable bytes, not a Qt object."""
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")  # type: ignore[call-overload]  # the stub wants bytes for "PNG"
    buffer.close()
    return ImageInput(name=name, png=bytes(data.data()))


@dataclass(frozen=True)
class PredictOutcome:
    """One input's result: a prediction with a thumbnail, or an error message naming the file."""

    index: int
    source: str
    prediction: Any | None
    error: str | None
    thumb_size: tuple[int, int] = (0, 0)
    thumb_rgba: bytes = b""
    people: tuple[tuple[Box, str, float], ...] = ()
    """Every person the pose model found (box in photo pixels, predicted class, its probability), largest first:
    what the row shows when a photo has several."""


THUMB_SIZE = 96

_predictor_lock = threading.Lock()
_predictor_cache: dict[tuple[str, float, str], Any] = {}


def get_predictor(checkpoint: Path, device: str = "auto") -> Any:
    """Load a Predictor once per checkpoint file version; loading is slow and jobs repeat often."""
    from harapp.ml.predictor import Predictor

    checkpoint = Path(checkpoint)
    try:
        mtime = checkpoint.stat().st_mtime
    except OSError as exc:
        raise HarappError(f"model checkpoint {checkpoint} cannot be read: {exc.strerror or exc}") from exc
    key = (str(checkpoint.resolve()), mtime, device)
    with _predictor_lock:
        predictor = _predictor_cache.get(key)
        if predictor is None:
            predictor = Predictor.from_checkpoint(checkpoint, device=device)
            _predictor_cache.clear()  # one model in memory at a time is enough for the app
            _predictor_cache[key] = predictor
        return predictor


def _open_input(item: Path | ImageInput) -> Any:
    import io

    from PIL import Image

    from harapp.core.errors import ImageFileError
    from harapp.ml.images import load_image

    if isinstance(item, ImageInput):
        try:
            with Image.open(io.BytesIO(item.png)) as img:
                return img.convert("RGB")
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad data
            raise ImageFileError(f"{item.name}: not a readable image ({exc})") from exc
    return load_image(Path(item))


def _thumbnail(image: Any) -> tuple[tuple[int, int], bytes]:
    thumb = image.copy()
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    rgba = thumb.convert("RGBA")
    return rgba.size, rgba.tobytes()


class PredictWorker(Worker):
    """Predicts a list of file paths and in-memory images; one bad input gives an error row, not a failure."""

    def __init__(
        self,
        checkpoint: Path,
        inputs: Sequence[Path | ImageInput],
        *,
        device: str = "auto",
        first_index: int = 0,
        user_box: Box | None = None,
    ) -> None:
        super().__init__()
        self.checkpoint = Path(checkpoint)
        self.inputs: tuple[Path | ImageInput, ...] = tuple(inputs)
        self.device = device
        self.first_index = first_index
        self.user_box = user_box
        """The person a user pointed at (for a single input): predict that person instead of the largest."""

    def work(self) -> tuple[PredictOutcome, ...]:
        predictor = get_predictor(self.checkpoint, self.device)
        outcomes: list[PredictOutcome] = []
        for offset, item in enumerate(self.inputs):
            self.check_cancelled()
            outcome = self._predict_one(predictor, self.first_index + offset, item)
            outcomes.append(outcome)
            self.progressed.emit(outcome)
        return tuple(outcomes)

    def _predict_one(self, predictor: Any, index: int, item: Path | ImageInput) -> PredictOutcome:
        source = item.name if isinstance(item, ImageInput) else str(item)
        try:
            image = _open_input(item)
            size, rgba = _thumbnail(image)
            people: tuple[tuple[Box, str, float], ...] = ()
            if self.user_box is not None:
                prediction = predictor.predict(image, user_box=self.user_box)
            elif predictor.detect and needs_person(predictor.views):
                from harapp.ml.people import detect_boxes

                # One search for people serves both: the main person's prediction and everyone's.
                found = detect_boxes(image)
                prediction = predictor.predict(image, detected=found)
                if len(found) > 1:
                    each = predictor.predict_people(image, found)
                    people = tuple(
                        (p.person_box or box, p.top_class, p.top_probability)
                        for p, box in zip(each, found, strict=True)
                    )
            else:
                prediction = predictor.predict(image)
        except HarappError as exc:
            return PredictOutcome(index, source, None, error_message(exc))
        except Exception as exc:  # noqa: BLE001 - an odd file must not end the whole batch
            log.warning("prediction failed for %s: %s", source, exc)
            return PredictOutcome(index, source, None, f"{source}: {error_message(exc)}")
        return PredictOutcome(index, source, prediction, None, size, rgba, people)
