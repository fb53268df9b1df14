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


def test_a_requested_freeze_takes_a_burst_of_objects_out_of_later_scans(qtbot, qapp) -> None:  # noqa: ANN001
    collector = gc_guard.install(qapp)
    burst: list[list] = []
    worker = threading.Thread(target=lambda: burst.extend([] for _ in range(50_000)))  # a worker's imports
    worker.start()
    worker.join()
    frozen_before = gc.get_freeze_count()
    gc_guard.request_freeze()  # from any thread; done at the collector's next tick on the GUI thread
    qtbot.waitUntil(lambda: gc.get_freeze_count() >= frozen_before + len(burst), timeout=5_000)
    assert gc.get_count()[0] < 1_000  # nothing left for the next young collection to scan
    assert collector.collect_if_due() == 0
