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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    # The machine's cores are shared; one intra-op thread keeps training tests steady and leaves room for the GUI.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
