from __future__ import annotations

from collections.abc import Iterator

import pytest

from harapp.gui import gc_guard


@pytest.fixture(scope="package", autouse=True)
def gc_on_gui_thread(qapp) -> Iterator[None]:  # noqa: ANN001 - pytest-qt fixture
    # As in the app: a collection inside a training thread that frees a previous test's widgets crashes Qt.
    collector = gc_guard.install(qapp)
    yield
    collector.stop()
