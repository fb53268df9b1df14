"""Issue 10, items 2 and 6: an honest estimate before Start, one calm bar across named phases, a chart axis that
keeps its meaning, fields that do not apply disabled with the reason, and results that come back on reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from harapp.core.store import Project
from harapp.gui.training_panel import TrainingPanel
from harapp.ml import estimate
from harapp.ml.progress import TrainProgress
from tests.gui.training_data import make_project, shown_panel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def project(tmp_path: Path):
    proj = make_project(tmp_path, per_class=6)
    yield proj
    proj.close()


def _panel(qtbot, project: Project | None) -> TrainingPanel:  # noqa: ANN001
    return shown_panel(qtbot, project, (1200, 640))


def test_fields_a_mode_ignores_are_disabled_and_say_why(qtbot) -> None:  # noqa: ANN001
    panel = _panel(qtbot, None)
    form = panel.form
    form.set_choice("efficientnet-lite0", "linear-probe")
    assert not panel.epochs_spin.isEnabled() and not panel.lr_spin.isEnabled()
    assert "L-BFGS" in panel.epochs_spin.toolTip() and "learning rate" in panel.lr_spin.toolTip()
    assert panel.batch_spin.isEnabled(), "the features are computed in batches: the batch size still matters"
    assert not form.prompts_edit.isEnabled() and "Only CLIP" in form.prompts_edit.toolTip()
    form.set_choice("efficientnet-lite0", "fine-tune")
    assert panel.epochs_spin.isEnabled() and "Passes over the training images" in panel.epochs_spin.toolTip()
    form.set_choice("clip", "zero-shot")
    assert not form.size_spin.isEnabled() and "224 px" in form.size_spin.toolTip()
    assert form.prompts_edit.isEnabled()
    assert not panel.retrain_button.isEnabled() and not panel.cancel_button.isEnabled(), "no project: no run"


def test_an_estimate_is_shown_before_start(qtbot, project, fake_speed_probe) -> None:  # noqa: ANN001
    panel = _panel(qtbot, project)
    qtbot.waitUntil(lambda: "on this CPU" in panel.estimate_label.text(), timeout=10_000)
    assert fake_speed_probe == [("efficientnet-lite0", 32)], "measured once, for the chosen kind and size"
    assert "12 labelled photos" in panel.estimate_label.text()
    assert "features" in panel.estimate_label.toolTip() and "project predictions" in panel.estimate_label.toolTip()
    # A slow machine for ResNet-18 (as measured): the estimate says so and names the faster ways.
    slow = estimate.Speed(forward_ips=0.5, train_ips=0.02, decode_seconds=0.01, build_seconds=1, device="CPU")
    estimate.save_speed("resnet18", 32, "auto", slow)
    panel.form.set_choice("resnet18", "fine-tune")
    text = panel.estimate_label.text()
    assert "Up to about" in text and "on this CPU: a GPU or the linear probe is faster" in text
    panel.form.set_choice("efficientnet-lite0", "linear-probe")
    assert fake_speed_probe == [("efficientnet-lite0", 32)], "a measured kind is not measured again"


def test_features_cached_at_another_size_do_not_shorten_the_estimate(project: Project) -> None:
    from harapp.gui.train_estimate import RunEstimator
    from harapp.ml.config import TrainConfig

    ids = [item.image_id for item in project.snapshot().items]
    project.put_embeddings("efficientnet-lite0:older", {i: bytes(8) for i in ids})
    older = TrainConfig(image_size=224)
    project.register_model("v1", older.model_kind, older.mode, Path("v1.pt"), 1, {}, older.to_dict())
    estimator = RunEstimator()
    estimator.set_project(project)
    assert estimator.run_size(older).cached_features == len(ids)
    assert estimator.run_size(TrainConfig()).cached_features == 0, "288 px features were never computed here"
    assert estimator.run_size(TrainConfig(model_kind="resnet18")).cached_features == 0


def test_one_bar_across_named_phases_never_goes_back(qtbot, project) -> None:  # noqa: ANN001
    panel = _panel(qtbot, project)
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(3)
    panel.batch_spin.setValue(4)
    values: list[int] = []
    formats: set[str] = set()
    axes: set[tuple[str, float]] = set()
    panel.progress_bar.valueChanged.connect(values.append)
    panel.progress_bar.valueChanged.connect(lambda _v: formats.add(panel.progress_bar.format()))
    panel.progress_bar.valueChanged.connect(lambda _v: axes.add((panel.chart.x_title(), panel.chart.x_max())))
    with qtbot.waitSignal(panel.predictions_updated, timeout=60_000):
        assert panel.start()
    assert values and values == sorted(values[:-1]) + values[-1:] and values[-1] == 1000
    assert values == sorted(values), f"the bar went backwards: {values}"
    named = {f.split(" · ")[0] for f in formats}
    assert {"fit", "evaluation", "project predictions"} <= named, named
    assert axes == {("epoch", 3.0)}, "the chart's x-axis kept one meaning and one range all run long"
    assert "Training finished" in panel.status_label.text() and "Took" in panel.status_label.text()


def test_a_linear_probe_charts_solver_steps_and_a_fine_tune_skips_its_warm_up(qtbot, project) -> None:  # noqa: ANN001
    panel = _panel(qtbot, project)
    panel.form.set_choice("efficientnet-lite0", "linear-probe")
    config = panel.build_config()
    panel.last_config = config
    panel._prepare_chart(config)
    from harapp.ml.run_progress import RunTracker

    panel.tracker = RunTracker(panel.estimator.plan(config)[0])
    assert panel.chart.x_title() == "solver step"

    def report(phase: str, step: int, steps: int, loss: float | None = 0.7) -> None:
        panel._on_progress(TrainProgress(1, 1, step, steps, loss, None, 0.0, None, step / steps, phase))

    report("embedding", 1, 3)
    assert panel.chart.points() == [] and "features" in panel.progress_bar.format()
    for step in (1, 40, 400):
        report("training", step, 400)
    assert panel.chart.x_max() == 400 and [p.x for p in panel.chart.points()] == [1.0, 40.0, 400.0]
    panel.form.set_choice("efficientnet-lite0", "fine-tune")
    config = panel.build_config()
    panel.last_config = config
    panel._prepare_chart(config)
    panel.tracker = RunTracker(panel.estimator.plan(config)[0])
    report("warm-up", 100, 200)
    assert panel.chart.points() == [], "the head warm-up is no epoch: it does not draw on the epoch chart"
    assert "head warm-up" in panel.progress_bar.format() and panel.progress_bar.value() < 500


def _trained_panel(qtbot, project: Project) -> TrainingPanel:  # noqa: ANN001
    """A panel that has trained a small CNN for 3 epochs and stored its predictions."""
    panel = _panel(qtbot, project)
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(3)
    panel.batch_spin.setValue(4)
    with qtbot.waitSignal(panel.predictions_updated, timeout=60_000):
        assert panel.start()
    return panel


def test_results_chart_and_settings_come_back_on_reopen(qtbot, project, tmp_path: Path) -> None:  # noqa: ANN001
    panel = _trained_panel(qtbot, project)
    metrics = panel.last_result.metrics
    trained_pr = panel.results.precision_recall()
    assert set(trained_pr) == {"walking", "running"}
    for name, (precision, recall) in trained_pr.items():
        assert precision == f"{100 * metrics.per_class[name]['precision']:.0f}%"
        assert recall == f"{100 * metrics.per_class[name]['recall']:.0f}%"
    path = project.path
    panel.set_project(None)
    assert panel.results.metrics is None and panel.chart.points() == []

    with Project.open(path) as reopened:
        again = _panel(qtbot, reopened)
        assert again.results.metrics is not None, "the Results are back without training"
        assert again.results.metrics.confusion == metrics.confusion
        assert again.confusion.class_names() == ("walking", "running")
        assert again.results.precision_recall() == trained_pr
        assert "v1 · Small CNN from scratch" in again.metrics_label.text()
        qtbot.waitUntil(lambda: len(again.chart.accuracy_points()) == 3, timeout=30_000)
        assert again.chart.x_title() == "epoch" and len(again.chart.points()) == 3
        assert again.last_config is not None and again.last_config.epochs == 3
        assert again.retrain_button.isEnabled(), "Retrain runs the active model's settings again"
        again.set_project(None)


def test_every_confusion_cell_lists_images_whose_gallery_badge_agrees(qtbot, project) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt

    from harapp.gui.gallery_model import GalleryModel

    panel = _trained_panel(qtbot, project)
    gallery = GalleryModel()
    gallery.set_project(project)  # the badges: the stored project predictions of the active model
    names = panel.confusion.class_names()
    listed = 0
    for t, true_name in enumerate(names):
        for p, predicted_name in enumerate(names):
            for image_id in panel.confusion.image_ids(t, p):
                row = gallery.image_row(image_id)
                assert row is not None and row.label == true_name
                assert row.prediction == predicted_name, (image_id, true_name, predicted_name)
                assert row.disagrees == (t != p)
                listed += 1
    assert listed > 0 and listed == sum(sum(r) for r in panel.results.metrics.confusion)  # all test photos
    panel.confusion.resize(400, 400)
    with qtbot.waitSignal(panel.confusion_cell_clicked) as clicked:  # what the gallery filter receives
        qtbot.mouseClick(
            panel.confusion, Qt.MouseButton.LeftButton, pos=panel.confusion.cell_rect(0, 0).center().toPoint()
        )
    assert clicked.args[2] == panel.confusion.image_ids(0, 0)
    panel.set_project(None)
