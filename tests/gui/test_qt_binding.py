"""The Qt binding itself: a long session must not wear out Python's objects."""

from __future__ import annotations

import sys

from PySide6.QtGui import QFont


def test_void_qt_calls_leave_the_reference_count_of_none_alone() -> None:
    # PySide6 6.12 took a reference off None per call of a void method; on Python 3.11 the app died after a few
    # minutes of painting ("none_dealloc"). Python 3.12+ makes None immortal, where the count reads constant.
    font = QFont()
    before = sys.getrefcount(None)
    for _ in range(20_000):
        font.setBold(True)
    assert sys.getrefcount(None) >= before - 100
