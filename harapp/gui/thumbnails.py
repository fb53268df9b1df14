"""Thumbnails decoded off the GUI thread into QImage, with a disk cache keyed by path, mtime and size.

Worker threads only ever make QImage (QPixmap is GUI-thread only); the GUI thread turns a finished QImage
into a QPixmap the first time it is painted. Requests are served newest first, so the page a person is
looking at decodes before the pages they scrolled past.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThread, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import QImage, QImageReader, QPixmap

from harapp.core.paths import cache_dir

DEFAULT_SIZE = 160
MAX_PENDING = 600
"""Requests beyond this are dropped oldest first: they belong to pages scrolled away long ago."""
DECODER_NICE = 10
"""How much nicer than the process decoding threads are, so they yield the CPU to the GUI thread: on 2 busy
cores, a page scrolled while thumbnails decode took 21 ms to paint at the same priority, 10 ms at +10."""


def lower_thread_priority() -> None:
    """Make the calling thread a background one (Linux: its own nice value; elsewhere: Qt's low priority)."""
    if sys.platform.startswith("linux"):
        # On Linux a thread id names just that thread; Qt's priorities do nothing there for normal threads.
        with contextlib.suppress(OSError):
            nice = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + DECODER_NICE)  # the main thread's
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    else:
        QThread.currentThread().setPriority(QThread.Priority.LowPriority)


def thumbs_dir() -> Path:
    return cache_dir() / "thumbs"


def cache_key(path: Path, size: int) -> str | None:
    """Key of a file's thumbnail: changes when the file is replaced or edited. None when the file is missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    text = f"{path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}|{size}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def decode_scaled(path: Path, size: int) -> tuple[QImage, str]:
    """Decode an image file scaled to fit size x size; JPEGs decode at reduced scale, which is much faster."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)  # honour EXIF orientation like the training pipeline does
    full = reader.size()
    if full.isValid() and (full.width() > size or full.height() > size):
        reader.setScaledSize(full.scaled(QSize(size, size), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        return QImage(), f"{path}: {reader.errorString() or 'not a readable image'}"
    if image.width() > size or image.height() > size:  # formats that ignore setScaledSize
        image = image.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image, ""


def load_thumbnail(path: Path, size: int, cache_root: Path | None) -> tuple[QImage, str]:
    """The thumbnail of one file, from the disk cache when it is there; safe to call from any thread."""
    if not path.is_file():
        return QImage(), f"{path}: file not found"
    key = cache_key(path, size) if cache_root is not None else None
    cached = cache_root / key[:2] / f"{key}.jpg" if cache_root is not None and key else None
    if cached is not None and cached.is_file():
        image = QImage(str(cached))
        if not image.isNull():
            return image, ""
    image, error = decode_scaled(path, size)
    if cached is not None and not image.isNull():
        _store(cached, image)
    return image, error


def _store(target: Path, image: QImage) -> None:
    # Write then rename: a reader on another thread never sees half a file, and a full disk only costs speed.
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        if image.save(str(tmp), "JPEG", 88):  # type: ignore[call-overload]  # the stub wants bytes for "JPEG"
            os.replace(tmp, target)
        else:
            tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class _Request:
    image_id: int
    path: Path
    generation: int


class _Signals(QObject):
    # Lives on the GUI thread; emitting from a pool thread queues the delivery there.
    loaded = Signal(int, int, QImage, str)  # generation, image id, thumbnail, error


class _Runner(QRunnable):
    """Drains the loader's request stack until it is empty; a few of these run at once."""

    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self._loader = loader
        self.setAutoDelete(True)

    def run(self) -> None:
        loader = self._loader
        lower_thread_priority()
        while True:
            request = loader._next_request()
            if request is None:
                return
            try:
                image, error = load_thumbnail(request.path, loader.pixel_size, loader.cache_root)
                if not image.isNull():
                    image.setDevicePixelRatio(loader.pixel_ratio)
            except Exception as exc:  # noqa: BLE001 - a bad file must never kill the runner silently
                image, error = QImage(), f"{request.path}: {exc}"
            loader._signals.loaded.emit(request.generation, request.image_id, image, error)


class ThumbnailLoader(QObject):
    """Asynchronous thumbnails for image ids: ``pixmap()`` answers at once or starts a load and returns None."""

    thumbnail_ready = Signal(int)
    """An image's thumbnail (or its failure) is now known; repaint it."""

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        *,
        disk_cache: bool = True,
        pixel_ratio: float = 1.0,
        memory_items: int = 1200,
        threads: int = 2,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.size = size
        """Thumbnail size in device-independent pixels (what layouts use)."""
        self.pixel_ratio = max(1.0, float(pixel_ratio))
        self.pixel_size = round(size * self.pixel_ratio)
        """Decoded size: sharp on high-DPI screens (size x device pixel ratio)."""
        self.cache_root: Path | None = thumbs_dir() if disk_cache else None
        self._memory_items = memory_items
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, threads))
        self._signals = _Signals(self)
        self._signals.loaded.connect(self._on_loaded)
        self._lock = threading.Lock()
        self._stack: OrderedDict[int, _Request] = OrderedDict()
        self._runners = 0
        self._in_flight: set[int] = set()
        # A thumbnail is held once: as the QImage a worker made until it is first painted, then as a QPixmap.
        self._images: OrderedDict[int, QImage] = OrderedDict()
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._generation = 0
        """Bumped by clear(): a result from before (another project, same image ids) is dropped."""
        self._errors: dict[int, str] = {}
        self._closed = False
        self._start_timer = QTimer(self)
        self._start_timer.setSingleShot(True)
        self._start_timer.setInterval(0)
        self._start_timer.timeout.connect(self._start_runners)

    # -- GUI-thread API ----------------------------------------------------------------------------------

    def pixmap(self, image_id: int, path: Path) -> QPixmap | None:
        """The thumbnail as a pixmap, or None while it loads (or when it failed: see ``error``)."""
        pixmap = self._pixmaps.get(image_id)
        if pixmap is not None:
            self._pixmaps.move_to_end(image_id)
            return pixmap
        image = self._images.pop(image_id, None)
        if image is None:
            self.request(image_id, path)
            return None
        pixmap = QPixmap.fromImage(image)
        self._pixmaps[image_id] = pixmap
        self._trim()
        return pixmap

    def image(self, image_id: int) -> QImage | None:
        image = self._images.get(image_id)
        if image is None and image_id in self._pixmaps:
            image = self._pixmaps[image_id].toImage()
        return image

    def has_thumbnail(self, image_id: int) -> bool:
        return image_id in self._images or image_id in self._pixmaps

    def error(self, image_id: int) -> str | None:
        return self._errors.get(image_id)

    def is_pending(self, image_id: int) -> bool:
        with self._lock:
            return image_id in self._stack or image_id in self._in_flight

    def request(self, image_id: int, path: Path) -> None:
        if self._closed or self.has_thumbnail(image_id) or image_id in self._errors:
            return
        with self._lock:
            if image_id in self._in_flight:
                return
            self._stack[image_id] = _Request(image_id, Path(path), self._generation)
            self._stack.move_to_end(image_id)  # newest on top
            while len(self._stack) > MAX_PENDING:
                self._stack.popitem(last=False)
        # Decoding starts once the paint that asked has finished, not in the middle of it: a scrolled page then
        # paints without the decoders competing (6-9 ms instead of 11-13 ms with cached thumbnails, 2 cores).
        if not self._start_timer.isActive():
            self._start_timer.start()

    def _start_runners(self) -> None:
        if self._closed:
            return
        with self._lock:
            more = max(0, min(self._pool.maxThreadCount(), len(self._stack)) - self._runners)
            self._runners += more
        for _ in range(more):
            self._pool.start(_Runner(self))

    def forget(self, image_ids: list[int] | None = None) -> None:
        """Drop cached thumbnails (all, or of some images) so they load again, e.g. after a file changed."""
        targets = [*self._images, *self._pixmaps, *self._errors] if image_ids is None else image_ids
        for image_id in targets:
            self._images.pop(image_id, None)
            self._pixmaps.pop(image_id, None)
            self._errors.pop(image_id, None)

    def clear(self) -> None:
        """Forget everything and drop queued requests (a different project was opened)."""
        with self._lock:
            self._stack.clear()
            self._in_flight.clear()
            self._generation += 1
        self.forget()

    def wait_idle(self, timeout_ms: int = 10_000) -> bool:
        return bool(self._pool.waitForDone(timeout_ms))

    def shutdown(self, timeout_ms: int = 10_000) -> None:
        """Stop taking requests and wait for the runners: called before the window (and its threads) go."""
        self._closed = True
        with self._lock:
            self._stack.clear()
        self._pool.waitForDone(timeout_ms)

    # -- worker side -------------------------------------------------------------------------------------

    def _next_request(self) -> _Request | None:
        with self._lock:
            if not self._stack:
                self._runners -= 1
                return None
            _, request = self._stack.popitem(last=True)
            self._in_flight.add(request.image_id)
            return request

    @Slot(int, int, QImage, str)
    def _on_loaded(self, generation: int, image_id: int, image: QImage, error: str) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self._in_flight.discard(image_id)
        if image.isNull():
            self._errors[image_id] = error or "not a readable image"
        else:
            self._images[image_id] = image
            self._trim()
        self.thumbnail_ready.emit(image_id)

    def _trim(self) -> None:
        # Least recently painted first; thumbnails not painted yet may be the page on screen, so they go last.
        while len(self._images) + len(self._pixmaps) > self._memory_items:
            (self._pixmaps if self._pixmaps else self._images).popitem(last=False)
