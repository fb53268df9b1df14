from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harapp.core.store import Project
from harapp.gui import gc_guard
from harapp.gui.main_window import MainWindow
from harapp.gui.workspace import Workspace
from tests.gui.curation_data import CurationProject, make_curation_project


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


FAKE_SPEED = {"forward_ips": 40.0, "train_ips": 15.0, "decode_seconds": 0.005, "build_seconds": 0.5, "device": "CPU"}


@pytest.fixture(autouse=True)
def fake_speed_probe(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The training form measures this machine's speed (seconds of CPU per model kind) when it is shown; GUI
    tests get fixed figures at once instead. The real probe has its own test in tests/ml/test_estimate.py."""
    from harapp.ml import estimate

    calls: list[tuple[str, int]] = []

    def fake(
        kind: str, image_size: int, device: str = "auto", batch: int = 4, cancel=None, photos=()
    ) -> estimate.Speed:  # noqa: ANN001
        calls.append((kind, image_size))
        speed = estimate.Speed(**FAKE_SPEED)
        estimate.save_speed(kind, image_size, device, speed)
        return speed

    monkeypatch.setattr(estimate, "measure_speed", fake)
    return calls


@pytest.fixture(autouse=True)
def answer_close_question(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Closing a window mid-training asks "stop it and quit?" in a modal box, which nobody clicks in a test:
    the answer is "Stop and quit" unless a test sets its own (``window.close_guard.ask``)."""
    from harapp.gui import close_guard

    asked: list[bool] = []
    monkeypatch.setattr(close_guard, "ask_to_stop", lambda _parent: asked.append(True) or True)
    return asked


@pytest.fixture
def curation(tmp_path: Path) -> CurationProject:
    return make_curation_project(tmp_path)


def open_window(qtbot, curation: CurationProject, size: tuple[int, int] = (1400, 900)) -> MainWindow:  # noqa: ANN001
    """The main window on the curation project: shown, active (shortcuts and focus work only in an active
    window) and showing the first photo."""
    win = MainWindow(curation.path)
    qtbot.addWidget(win)
    win.resize(*size)
    with qtbot.waitActive(win):
        win.show()
        win.activateWindow()
    qtbot.waitUntil(lambda: win.workspace.inspector.image_id() == curation.ids[0])
    return win


@pytest.fixture
def workspace(qtbot, curation: CurationProject) -> Iterator[Workspace]:  # noqa: ANN001
    """The gallery, filters and image view on the curation project, with the keys in the gallery."""
    project = Project.open(curation.path)
    area = Workspace()
    qtbot.addWidget(area)
    area.set_project(project)
    area.show()
    qtbot.waitExposed(area)
    area.gallery.setFocus()
    yield area
    area.shutdown()
    area.set_project(None)
    project.close()
