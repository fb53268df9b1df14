from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtCore import QObject

from harapp.gui import gc_guard


class _Cycle:
    def __init__(self) -> None:
        self.me = self
        self.qt = QObject()


def _cycle_then_worker_allocations() -> tuple[weakref.ref, list]:
    cycle = _Cycle()
    alive = weakref.ref(cycle)
    del cycle
    kept: list[list] = []
    # Enough live containers in a worker to trip an automatic collection there, were it enabled.
    worker = threading.Thread(target=lambda: kept.extend([] for _ in range(20 * gc.get_threshold()[0])))
    worker.start()
    worker.join()
    return alive, kept


def test_garbage_is_collected_on_the_gui_thread_not_in_workers(qtbot, qapp) -> None:  # noqa: ANN001
    collector = gc_guard.install(qapp)
    assert gc_guard.install(qapp) is collector  # one per application
    assert not gc.isenabled()
    alive, _kept = _cycle_then_worker_allocations()
    assert alive() is not None, "a worker thread ran the collector"
    qtbot.waitUntil(lambda: alive() is None, timeout=5_000)  # the GUI thread's timer collected it


def test_without_the_guard_a_worker_thread_collects(qapp) -> None:  # noqa: ANN001
    # The hazard the guard exists for: with automatic collection on, the worker frees the GUI's cycle.
    gc.enable()
    try:
        alive, _kept = _cycle_then_worker_allocations()
        assert alive() is None
    finally:
        gc.disable()
