"""Guided curation in the window: the likely-mislabelled view and Enter, the label-next queue, the image view's
suggestion, and the background refresh after a correction."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QTimer

from harapp.core.store import Project
from harapp.core.types import LabelQuality
from harapp.gui.workspace import Workspace
from tests.gui.curation_data import CLASSES, CurationProject, make_curation_project


def _review(image_id: int, given: str, suggested: str, score: float, wrong: bool, revision: int) -> LabelQuality:
    probs = {c: (0.7 if c == suggested else 0.1) for c in CLASSES}
    return LabelQuality(image_id, None, "review", given, suggested, score, probs, wrong, "test scorer", revision)


def _next(image_id: int, guess: str, margin: float, revision: int) -> LabelQuality:
    probs = {c: (0.5 if c == guess else 0.5 / 3) for c in CLASSES}
    return LabelQuality(image_id, None, "next", None, guess, margin, probs, False, "test scorer", revision)


@pytest.fixture
def curation(tmp_path: Path) -> CurationProject:
    data = make_curation_project(tmp_path)
    with Project.open(data.path) as project:
        ids, revision = data.ids, project.label_revision()
        project.put_label_quality(
            [
                _review(ids[0], "walking", "sitting", 0.05, True, revision),
                _review(ids[1], "running", "running", 0.95, False, revision),
                _review(ids[2], "sitting", "standing", 0.20, True, revision),
                _review(ids[4], "walking", "walking", 0.90, False, revision),
                _next(ids[9], "standing", 0.10, revision),
                _next(ids[8], "sitting", 0.05, revision),
            ]
        )
    return data


def _label_of(curation: CurationProject, image_id: int) -> str | None:
    with Project.open(curation.path, readonly=True) as project:
        label = project.image(image_id).label
        return label.class_name if label is not None else None


def test_likely_mislabelled_view_and_enter_accepts_the_suggestion(
    qtbot,
    workspace: Workspace,
    curation: CurationProject,  # noqa: ANN001
) -> None:
    ids = curation.ids
    assert workspace.filters.review_box.itemText(1) == "Likely mislabelled (2)"
    workspace.filters.show_review("likely-wrong")
    assert workspace.proxy.visible_image_ids() == [ids[0], ids[2]]  # the likeliest wrong first
    assert workspace.gallery.current_image_id() == ids[0]
    assert "Suggested: <b>sitting</b>" in workspace.inspector.suggestion.text()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_Return)
    assert _label_of(curation, ids[0]) == "sitting"
    # The corrected photo leaves the view (its score is about the old label) and the next one is current.
    assert workspace.proxy.visible_image_ids() == [ids[2]]
    assert workspace.gallery.current_image_id() == ids[2]
    assert workspace.filters.review_box.itemText(1) == "Likely mislabelled (1)"
    note = workspace.filters.review_note  # often cut short in the dock: hovering shows all of it
    assert "scored by" in note.text().lower() and note.toolTip() == note.text()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_2)  # 1-4 override the suggestion
    assert _label_of(curation, ids[2]) == "running"
    assert workspace.proxy.visible_image_ids() == []


def test_label_next_queue_preselects_the_models_guess(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    ids = curation.ids
    workspace.filters.show_review("label-next")
    assert workspace.proxy.visible_image_ids() == [ids[8], ids[9]]  # smallest margin first
    assert workspace.filters.sort_box.currentData() == "label-next"
    assert "the label review guesses <b>sitting</b>" in workspace.inspector.suggestion.text()
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_Enter)
    assert _label_of(curation, ids[8]) == "sitting"
    assert workspace.gallery.current_image_id() == ids[9]
    workspace.filters.show_review(None)
    assert workspace.filters.sort_box.currentData() == "id" and len(workspace.proxy.visible_image_ids()) == 12


def test_enter_without_a_suggestion_says_why(qtbot, workspace: Workspace, curation: CurationProject) -> None:  # noqa: ANN001
    messages: list[str] = []
    workspace.status_message.connect(messages.append)
    workspace.select_image(curation.ids[1])
    qtbot.keyClick(workspace.gallery, Qt.Key.Key_Return)
    assert _label_of(curation, curation.ids[1]) == "running"
    assert messages and "No suggested label for this photo" in messages[-1]
    assert not workspace.inspector.suggestion.isVisible()


def test_a_correction_refreshes_the_scores_in_the_background(
    qtbot,
    workspace: Workspace,
    curation: CurationProject,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from harapp.gui import curation as curation_module
    from harapp.ml import curation as ml_curation

    calls: list[int] = []
    real = ml_curation.refresh_after_corrections

    def slow_refresh(project, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(project.label_revision())
        # What a real refresh stores, after some work the GUI thread must not wait for (Python work, like
        # the real one's, so the two threads compete for the interpreter).
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            sum(range(1000))
        rows = [_review(curation.ids[3], "standing", "walking", 0.01, True, project.label_revision())]
        project.put_label_quality(rows)
        return ml_curation.Refresh(None, False, 0, None, 0.3, "")

    monkeypatch.setattr(ml_curation, "refresh_after_corrections", slow_refresh)
    assert real is not slow_refresh
    monkeypatch.setattr(curation_module, "DELAY_MS", 50)
    workspace.refresher._timer.setInterval(50)
    assert curation_module.wait_for_warm_up(60)  # its imports once per process, not the refresh, are not timed
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    with qtbot.waitSignal(workspace.refresher.refreshed, timeout=20_000):
        workspace.select_image(curation.ids[1])
        qtbot.keyClick(workspace.gallery, Qt.Key.Key_3)  # a correction: the stored scores are now stale
    timer.stop()
    qtbot.waitUntil(lambda: not workspace.refresher.is_busy(), timeout=10_000)
    assert len(calls) == 1
    assert workspace.proxy.sourceModel().quality_counts() == (1, 0)  # type: ignore[union-attr]
    workspace.filters.show_review("likely-wrong")
    assert workspace.proxy.visible_image_ids() == [curation.ids[3]]
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert gaps and max(gaps) < 0.25  # the GUI thread kept ticking while the refresh worked


def test_switching_projects_cancels_a_running_refresh_without_waiting_or_using_it(
    qtbot,
    workspace: Workspace,
    curation: CurationProject,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from harapp.ml import curation as ml_curation

    started: list[bool] = []

    def endless_refresh(project, *, cancel, **kwargs):  # type: ignore[no-untyped-def]
        started.append(True)
        end = time.perf_counter() + 20
        while not cancel.is_set() and time.perf_counter() < end:
            sum(range(1000))
        time.sleep(0.5)  # the job ends a while after it noticed: its outcome must still be ignored
        return ml_curation.Refresh(None, False, 0, None, 0.0, "")

    monkeypatch.setattr(ml_curation, "refresh_after_corrections", endless_refresh)
    outcomes: list[object] = []
    workspace.refresher.refreshed.connect(outcomes.append)
    assert workspace.refresher.refresh_now()
    qtbot.waitUntil(lambda: bool(started), timeout=10_000)
    began = time.perf_counter()
    workspace.set_project(None)
    assert time.perf_counter() - began < 0.3  # the GUI did not wait for the job
    assert workspace.refresher.is_busy()
    qtbot.waitUntil(lambda: not workspace.refresher.is_busy(), timeout=10_000)
    qtbot.wait(50)
    assert outcomes == []


def test_a_training_run_cancels_the_refresh_and_it_runs_again_afterwards(
    qtbot,
    workspace: Workspace,
    curation: CurationProject,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    from harapp.ml import curation as ml_curation

    runs: list[str] = []

    def refresh(project, *, cancel, **kwargs):  # type: ignore[no-untyped-def]
        end = time.perf_counter() + (20 if not runs else 0.05)
        runs.append("start")
        while not cancel.is_set() and time.perf_counter() < end:
            sum(range(1000))
        runs.append("cancelled" if cancel.is_set() else "finished")
        return ml_curation.Refresh(None, False, 0, None, 0.0, "")

    monkeypatch.setattr(ml_curation, "refresh_after_corrections", refresh)
    training = [False]
    refresher = workspace.refresher
    refresher.is_training = lambda: training[0]
    refresher._timer.setInterval(50)
    refresher.refresh_now()
    qtbot.waitUntil(lambda: runs == ["start"], timeout=10_000)
    training[0] = True
    refresher.training_started()
    qtbot.waitUntil(lambda: runs == ["start", "cancelled"], timeout=10_000)
    qtbot.wait(300)
    assert runs == ["start", "cancelled"]  # it waits while the training runs
    training[0] = False
    with qtbot.waitSignal(refresher.refreshed, timeout=10_000):
        pass
    assert runs == ["start", "cancelled", "start", "finished"]


def test_a_refresh_of_a_model_that_is_no_longer_active_leaves_the_badges_to_the_active_one(
    workspace: Workspace, curation: CurationProject
) -> None:
    from harapp.core.types import StoredPrediction
    from harapp.gui.curation import RefreshOutcome
    from harapp.ml.curation import Refresh

    project = workspace.model.project
    assert project is not None
    other = project.register_model("b", "cnn-scratch", "scratch", curation.path.parent / "b.pt", 1, {}, {})
    project.put_predictions(other, {curation.ids[0]: StoredPrediction("standing", 0.8, {"standing": 0.8})})
    project.set_active_model(other)  # the user switched models while a refresh of the first one ran
    workspace.model.reload_predictions()
    stale = {curation.ids[0]: StoredPrediction("running", 0.9, {"running": 0.9})}
    refresh = Refresh(curation.model_id, True, 1, None, 0.1, "")
    workspace.apply_refresh(RefreshOutcome(curation.path, refresh, stale, ()))
    row = workspace.model.image_row(curation.ids[0])
    assert row is not None and row.prediction == "standing"  # the active model's, not the refreshed one's
    project.set_active_model(curation.model_id)
    workspace.model.reload_predictions()
    workspace.apply_refresh(RefreshOutcome(curation.path, refresh, stale, ()))
    row = workspace.model.image_row(curation.ids[0])
    assert row is not None and row.prediction == "running"


def test_predictions_a_refresh_completed_without_retraining_reach_the_gallery(
    curation: CurationProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from harapp.gui import curation as curation_module
    from harapp.ml import curation as ml_curation

    def completed(project, **kwargs):  # type: ignore[no-untyped-def]
        # A refresh after a cancelled one: nothing to retrain, but the predictions it lacked are written now.
        return ml_curation.Refresh(curation.model_id, False, 3, None, 0.1, "")

    monkeypatch.setattr(ml_curation, "refresh_after_corrections", completed)
    outcome = curation_module.refresh_project(curation.path, "cpu", threading.Event())
    assert outcome.predictions is not None and curation.ids[0] in outcome.predictions


def test_a_class_rename_shows_the_stale_counts_and_scores_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []
    monkeypatch.setattr(workspace.refresher, "refresh_now", lambda: asked.append(True) or True)
    project = workspace.model.project
    assert project is not None
    assert workspace.model.quality_counts()[0] == 2
    project.rename_class("walking", "strolling")  # what the class editor does, then the window reloads
    workspace.reload()
    assert workspace.model.quality_counts()[0] == 1  # the score about "walking" no longer fits its label
    assert asked, "scores about the old class names are refreshed"
