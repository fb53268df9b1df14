"""Thumbnails: decoded off the GUI thread, cached on disk by path+mtime+size, placeholders while loading."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from harapp.core.paths import cache_dir
from harapp.gui import thumbnails
from harapp.gui.thumbnails import ThumbnailLoader, cache_key, load_thumbnail


def _jpeg(path: Path, size: tuple[int, int] = (400, 200), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    Image.new("RGB", size, colour).save(path, quality=90)
    return path


@pytest.fixture
def loader(qapp) -> Iterator[ThumbnailLoader]:  # noqa: ANN001 - pytest-qt fixture
    thumbs = ThumbnailLoader(size=64)
    yield thumbs
    thumbs.shutdown()


def test_placeholder_then_thumbnail_decoded_off_the_gui_thread(qtbot, loader, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = _jpeg(tmp_path / "a.jpg")
    decode_threads: list[int] = []
    real_decode = thumbnails.decode_scaled

    def recording_decode(p: Path, size: int):  # noqa: ANN202
        decode_threads.append(threading.get_ident())
        return real_decode(p, size)

    monkeypatch.setattr(thumbnails, "decode_scaled", recording_decode)
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000) as blocker:
        assert loader.pixmap(7, path) is None  # placeholder while it loads
    assert blocker.args == [7]
    pixmap = loader.pixmap(7, path)
    assert pixmap is not None and not pixmap.isNull()
    assert (pixmap.width(), pixmap.height()) == (64, 32)  # fits 64x64, aspect kept
    assert decode_threads and threading.get_ident() not in decode_threads
    assert loader.error(7) is None


def test_decoding_starts_once_the_painting_code_returns(qtbot, loader, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    # A paint asks for a page of thumbnails; decoders started in the middle of it would slow the paint down.
    path = _jpeg(tmp_path / "d.jpg")
    started: list[int] = []
    real_load = thumbnails.load_thumbnail

    def recording_load(p: Path, size: int, cache_root: Path | None):  # noqa: ANN202
        started.append(threading.get_ident())
        return real_load(p, size, cache_root)

    monkeypatch.setattr(thumbnails, "load_thumbnail", recording_load)
    for image_id in range(4):
        assert loader.pixmap(image_id, path) is None
    time.sleep(0.2)  # the rest of a long paint
    assert started == [] and all(loader.is_pending(i) for i in range(4))
    qtbot.waitUntil(lambda: all(loader.has_thumbnail(i) for i in range(4)), timeout=10_000)
    assert len(started) == 4


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="thread nice values are a Unix notion")
def test_decoding_threads_yield_the_cpu_to_the_gui_thread(qtbot, loader, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    path = _jpeg(tmp_path / "n.jpg")
    niceness: list[int] = []
    real_decode = thumbnails.decode_scaled

    def recording_decode(p: Path, size: int):  # noqa: ANN202
        niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_decode(p, size)

    monkeypatch.setattr(thumbnails, "decode_scaled", recording_decode)
    gui_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert threading.get_native_id() == os.getpid(), "the GUI thread is the main thread"
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
        loader.request(3, path)
    if sys.platform.startswith("linux"):
        assert niceness == [min(19, gui_before + thumbnails.DECODER_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui_before  # the GUI thread keeps its own


def test_disk_cache_keyed_by_path_mtime_and_size(qtbot, loader, tmp_path) -> None:  # noqa: ANN001
    path = _jpeg(tmp_path / "b.jpg")
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
        loader.request(1, path)
    key = cache_key(path, 64)
    cached = cache_dir() / "thumbs" / key[:2] / f"{key}.jpg"
    assert cached.is_file()
    # The cached file is what a second load returns: mark it, and the mark shows up.
    Image.new("RGB", (64, 32), (0, 255, 0)).save(cached)
    image, error = load_thumbnail(path, 64, cache_dir() / "thumbs")
    assert error == "" and image.pixelColor(5, 5).green() > 200
    # Editing the file changes its key, so the stale thumbnail is not used.
    _jpeg(path, size=(300, 300), colour=(10, 10, 250))
    os.utime(path, ns=(1, 1))
    assert cache_key(path, 64) != key
    image, _ = load_thumbnail(path, 64, cache_dir() / "thumbs")
    assert (image.width(), image.height()) == (64, 64) and image.pixelColor(5, 5).blue() > 200


def test_missing_and_broken_files_report_an_error(qtbot, loader, tmp_path) -> None:  # noqa: ANN001
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    with qtbot.waitSignals([loader.thumbnail_ready, loader.thumbnail_ready], timeout=10_000):
        loader.request(1, tmp_path / "missing.jpg")
        loader.request(2, broken)
    qtbot.waitUntil(lambda: loader.error(1) is not None and loader.error(2) is not None, timeout=10_000)
    assert "missing.jpg" in loader.error(1) and "not found" in loader.error(1)
    assert "broken.jpg" in loader.error(2)
    assert loader.pixmap(1, tmp_path / "missing.jpg") is None
    assert not loader.is_pending(1)  # a failure is remembered, not retried on every paint


def test_many_requests_all_arrive_and_shutdown_waits(qtbot, tmp_path) -> None:  # noqa: ANN001
    loader = ThumbnailLoader(size=32, disk_cache=False, threads=2)
    paths = [_jpeg(tmp_path / f"{i}.jpg", (40 + i, 30)) for i in range(20)]
    for i, path in enumerate(paths):
        loader.request(i, path)
    qtbot.waitUntil(lambda: all(loader.image(i) is not None for i in range(20)), timeout=20_000)
    assert not list((tmp_path).glob("**/*.tmp"))
    loader.shutdown()
    loader.request(99, paths[0])  # ignored after shutdown
    assert not loader.is_pending(99)


def test_results_from_before_clear_are_dropped(qtbot, qapp, loader, tmp_path) -> None:  # noqa: ANN001
    old = _jpeg(tmp_path / "old.jpg", colour=(250, 0, 0))
    new = _jpeg(tmp_path / "new.jpg", colour=(0, 0, 250))
    loader.request(3, old)  # image 3 of the previous project...
    loader.clear()  # ...another project opens, where image 3 is a different photo
    assert loader.wait_idle()
    qapp.processEvents()  # deliver the old request's queued result (to be dropped)
    assert not loader.has_thumbnail(3)
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
        loader.request(3, new)
    assert loader.image(3).pixelColor(10, 10).blue() > 200


def test_memory_holds_at_most_the_limit(qtbot, tmp_path) -> None:  # noqa: ANN001
    loader = ThumbnailLoader(size=16, disk_cache=False, memory_items=5)
    path = _jpeg(tmp_path / "p.jpg", (20, 20))
    for i in range(12):
        loader.request(i, path)
    qtbot.waitUntil(lambda: not any(loader.is_pending(i) for i in range(12)), timeout=20_000)
    held = [i for i in range(12) if loader.has_thumbnail(i)]
    assert len(held) == 5
    assert loader.pixmap(held[-1], path) is not None  # painting converts without reloading
    loader.shutdown()


def test_high_dpi_thumbnails_are_decoded_at_device_pixels(qtbot, tmp_path) -> None:  # noqa: ANN001
    loader = ThumbnailLoader(size=32, disk_cache=False, pixel_ratio=2.0)
    path = _jpeg(tmp_path / "hd.jpg", (400, 200))
    with qtbot.waitSignal(loader.thumbnail_ready, timeout=10_000):
        loader.request(1, path)
    pixmap = loader.pixmap(1, path)
    assert (pixmap.width(), pixmap.height()) == (64, 32)  # device pixels
    assert pixmap.deviceIndependentSize().toSize().width() == 32  # what the layout sees
    loader.shutdown()
