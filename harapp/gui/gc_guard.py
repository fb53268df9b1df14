"""Python's cyclic garbage collector, run on the GUI thread only.

The collector runs in whichever thread happens to allocate when a generation's threshold trips. When that is
a training or thumbnail worker and the garbage holds Qt wrappers (a closed dialog, a lambda bound to a widget),
their C++ objects are destroyed off their own thread and the process crashes. So automatic collection is
switched off and a timer on the GUI thread collects instead, generation by generation as the counts ask.
"""

from __future__ import annotations

import gc
import threading
import time

from PySide6.QtCore import QObject, QTimer

_FREEZE = threading.Event()


def request_freeze() -> None:
    """From any thread: at its next tick the collector moves every object that exists then out of all future
    scans (after a burst of long-lived objects, such as a worker's first imports, which would make the next
    collection on the GUI thread stall it for ~100 ms)."""
    _FREEZE.set()


FULL_COLLECTION_INTERVAL_S = 120.0
"""A full collection walks every object (torch brings hundreds of thousands): at most this often."""


class GuiThreadCollector(QObject):
    def __init__(self, interval_ms: int = 250, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        # What exists at start-up (modules, Qt bindings) lives as long as the app: keep it out of every scan.
        gc.freeze()
        self._last_full = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._timer.start()

    def collect_if_due(self) -> int:
        """Collect the oldest generation whose count has passed its threshold (the oldest one only every
        FULL_COLLECTION_INTERVAL_S, as each such pass stalls the GUI); the number of objects freed."""
        if _FREEZE.is_set():
            _FREEZE.clear()
            gc.freeze()
            return 0
        counts, thresholds = gc.get_count(), gc.get_threshold()
        now = time.monotonic()
        if counts[2] > thresholds[2] and now - self._last_full >= FULL_COLLECTION_INTERVAL_S:
            self._last_full = now
            return gc.collect(2)
        for generation in (1, 0):
            if counts[generation] > thresholds[generation]:
                return gc.collect(generation)
        return 0

    def stop(self) -> None:
        self._timer.stop()
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()


def install(app: QObject) -> GuiThreadCollector:
    """One collector per application, parented to it so it lives exactly as long."""
    existing = app.findChild(GuiThreadCollector)
    return existing if isinstance(existing, GuiThreadCollector) else GuiThreadCollector(parent=app)
