"""The training panel end to end with the real trainer: start, live chart, cancel, results, models, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from harapp.gui.training_panel import TrainingPanel
from harapp.ml.errors import ConfigError
from tests.gui.training_data import make_project, shown_panel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def project(tmp_path: Path):
    proj = make_project(tmp_path, per_class=6)
    yield proj
    proj.close()


@pytest.fixture
def panel(qtbot, project) -> TrainingPanel:
    widget = shown_panel(qtbot, project, (1100, 360))
    yield widget
    widget.shutdown()


def _choose_tiny_cnn(panel: TrainingPanel, epochs: int) -> None:
    panel.form.set_choice("cnn-scratch", "scratch")
    panel.epochs_spin.setValue(epochs)
    panel.batch_spin.setValue(4)


def test_defaults_and_valid_combinations(qtbot) -> None:
    widget = TrainingPanel()
    qtbot.addWidget(widget)
    assert (widget.form.model_kind(), widget.form.mode()) == ("efficientnet-lite0", "linear-probe")
    assert not widget.start_button.isEnabled(), "no project: nothing to train on"
    widget.form.set_choice("cnn-scratch")
    assert widget.form.mode() == "scratch"
    assert [m for m in ("scratch", "zero-shot", "linear-probe", "fine-tune") if widget.form.mode_enabled(m)] == [
        "scratch"
    ]
    widget.form.set_choice("clip", "zero-shot")
    assert widget.form.mode_enabled("zero-shot") and not widget.form.mode_enabled("scratch")
    assert not widget.epochs_spin.isEnabled(), "zero-shot has no epochs to choose"
    widget.form.set_choice("resnet18", "fine-tune")
    assert widget.lr_spin.value() < 1e-3, "fine-tuning pretrained weights needs a small learning rate"
    assert all(w.toolTip() for w in (widget.form.kind_combo, widget.form.mode_combo, widget.epochs_spin))


def test_weights_file_and_edited_prompts_reach_the_config(qtbot, tmp_path: Path) -> None:
    widget = TrainingPanel()
    qtbot.addWidget(widget)
    form = widget.form
    form.set_choice("clip", "zero-shot")
    assert form.build_config().prompts is None and form.build_config().weights_path is None  # the defaults
    form.prompts_edit.setText("a photo of a person {}. | someone who is {}")
    form.weights_edit.setText(str(tmp_path / "clip.pt"))
    config = form.build_config()
    assert config.prompts == ("a photo of a person {}.", "someone who is {}")
    assert config.weights_path == str(tmp_path / "clip.pt")
    form.prompts_edit.setText("no placeholder here")
    with pytest.raises(ConfigError, match="must contain"):
        form.build_config()
    form.set_choice("resnet18", "fine-tune")
    assert form.weights_edit.text() == ""  # a CLIP file does not fit a ResNet
    form.weights_edit.setText(str(tmp_path / "resnet18.pth"))
    form.set_choice("resnet18", "scratch")
    assert not form.weights_edit.isEnabled() and form.build_config().weights_path is None
    form.set_choice("cnn-scratch")
    assert not form.prompts_edit.isEnabled() and not form.weights_edit.isEnabled()
    assert form.build_config().prompts is None


def test_start_draws_the_chart_and_cancel_stops_it(qtbot, panel: TrainingPanel, project) -> None:
    _choose_tiny_cnn(panel, epochs=400)
    qtbot.mouseClick(panel.start_button, Qt.MouseButton.LeftButton)
    assert panel.is_training()
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    assert not panel.kind_combo.isEnabled(), "settings are frozen while a run uses them"
    qtbot.waitUntil(lambda: len(panel.chart.points()) >= 3, timeout=60_000)
    assert panel.progress_bar.value() > 0
    assert "images/s" in panel.status_label.text() and "left" in panel.status_label.text()
    assert "fit" in panel.status_label.text() and "epoch" in panel.status_label.text()
    assert (panel.chart.x_title(), panel.chart.x_max()) == ("epoch", 400), "the axis is the run's, from the start"
    xs = [p.x for p in panel.chart.points()]
    assert xs == sorted(xs) and all(p.loss is not None and p.loss >= 0 for p in panel.chart.points())
    with qtbot.waitSignal(panel.train_job.done, timeout=10_000):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert not panel.is_training()
    assert "cancelled" in panel.status_label.text().lower()
    assert panel.start_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert project.models() == [], "a cancelled run registers no model"


def test_finished_training_shows_metrics_models_and_stores_predictions(qtbot, panel: TrainingPanel, project) -> None:
    _choose_tiny_cnn(panel, epochs=3)
    activated: list[int] = []
    panel.active_model_changed.connect(activated.append)
    with qtbot.waitSignal(panel.predictions_updated, timeout=60_000) as stored:
        assert panel.start()
    assert len(activated) == 1 and stored.args == activated
    model_id = activated[0]
    models = project.models()
    assert [m.id for m in models] == [model_id] and models[0].active
    assert panel.models_table.model_ids() == [model_id]
    assert "Test accuracy" in panel.metrics_label.text()
    assert panel.confusion.class_names() == ("walking", "running")
    assert len(panel.chart.points()) >= 3
    # One validation accuracy per finished epoch, at the epoch's end.
    assert [x for x, _ in panel.chart.accuracy_points()] == [1.0, 2.0, 3.0]
    assert all(0 <= acc <= 1 for _, acc in panel.chart.accuracy_points())
    predictions = project.predictions(model_id)
    assert set(predictions) == set(project.image_ids())
    for p in predictions.values():
        assert p.class_name in ("walking", "running") and 0 <= p.confidence <= 1
        assert sum(p.probabilities.values()) == pytest.approx(1, abs=1e-4)
    # Retrain: the same settings again on the current labels gives a second model version.
    qtbot.waitUntil(panel.retrain_button.isEnabled, timeout=10_000)  # once the run's thread has ended
    with qtbot.waitSignal(panel.predictions_updated, timeout=60_000):
        qtbot.mouseClick(panel.retrain_button, Qt.MouseButton.LeftButton)
    assert len(project.models()) == 2
    # Picking the older model from the list makes it active again.
    with qtbot.waitSignal(panel.active_model_changed, timeout=5_000) as blocker:
        panel.models_table.select_model(model_id)
        qtbot.mouseClick(panel.models_table.use_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [model_id] and project.active_model().id == model_id


def test_confusion_cell_click_emits_the_images_behind_it(qtbot, panel: TrainingPanel) -> None:
    _choose_tiny_cnn(panel, epochs=2)
    with qtbot.waitSignal(panel.predictions_updated, timeout=60_000):
        panel.start()
    metrics = panel.last_result.metrics
    truth = dict(zip(metrics.test_image_ids, metrics.test_targets, strict=True))
    preds = dict(zip(metrics.test_image_ids, metrics.test_predictions, strict=True))
    panel.tabs.setCurrentIndex(0)
    qtbot.wait(10)
    row, col = next((t, p) for t in range(2) for p in range(2) if metrics.confusion[t][p] > 0)
    centre = panel.confusion.cell_rect(row, col).center().toPoint()
    with qtbot.waitSignal(panel.confusion_cell_clicked, timeout=2_000) as blocker:
        qtbot.mouseClick(panel.confusion, Qt.MouseButton.LeftButton, pos=centre)
    true_name, pred_name, ids = blocker.args
    assert (true_name, pred_name) == (metrics.class_names[row], metrics.class_names[col])
    assert len(ids) == metrics.confusion[row][col]
    assert all(truth[i] == row and preds[i] == col for i in ids)


def test_missing_pretrained_weights_show_the_engines_message(qtbot, panel: TrainingPanel) -> None:
    # CLIP's weights live in the (empty, per-test) cache dir and HF_HUB_OFFLINE is set: the engine refuses.
    panel.form.set_choice("clip", "zero-shot")
    assert panel.start()
    with qtbot.waitSignal(panel.train_job.done, timeout=60_000):
        pass
    assert panel.message_label.isVisible()
    assert "weights" in panel.message().lower() and "not available" in panel.message()
    assert "failed" in panel.status_label.text().lower()
    assert panel.start_button.isEnabled(), "the panel is usable again after the error"


def test_start_without_labels_explains_why(qtbot, tmp_path: Path) -> None:
    from harapp.core.store import Project

    with Project.create(tmp_path / "empty.harapp") as empty:
        widget = TrainingPanel()
        qtbot.addWidget(widget)
        widget.set_project(empty)
        assert not widget.start()
        assert "Label" in widget.message()
        assert not widget.is_training()


def test_chart_scales_ignores_non_finite_values_and_paints_in_dark_palettes(qtbot) -> None:
    from PySide6.QtGui import QColor, QPalette

    from harapp.gui.chart import TrainingChart, nice_step

    assert [nice_step(s) for s in (1.0, 2.3, 70.0)] == [0.5, 1.0, 20.0]
    chart = TrainingChart()
    qtbot.addWidget(chart)
    chart.resize(400, 220)
    chart.clear(epochs=5)
    chart.add_point(0.5, 1.2)
    chart.add_point(1.0, float("nan"), 0.5)  # a diverged loss is dropped, its accuracy kept
    chart.add_point(1.5, float("inf"))
    chart.set_accuracy(1.0, 0.6)  # a later report for the same epoch replaces the earlier value
    assert [p.loss for p in chart.points()] == [1.2]
    assert chart.accuracy_points() == [(1.0, 0.6)]
    light = chart.grab().toImage()
    dark = QPalette()
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.Base, "#202124"),
                         (QPalette.ColorRole.WindowText, "#e8eaed")):  # fmt: skip
        dark.setColor(role, QColor(colour))
    chart.setPalette(dark)
    dark_image = chart.grab().toImage()
    corner = (5, 5)
    assert QColor(light.pixel(*corner)).lightness() > 128 > QColor(dark_image.pixel(*corner)).lightness()


def test_chart_restarts_its_line_when_progress_goes_back_and_clips_outliers(qtbot) -> None:
    from harapp.gui.chart import TrainingChart

    chart = TrainingChart()
    qtbot.addWidget(chart)
    chart.clear(epochs=1)
    for x, loss in ((0.1, 0.9), (0.5, 0.4), (0.05, 0.8), (0.3, 0.5), (0.6, 0.45), (0.8, 0.4), (0.9, 0.35)):
        chart.add_point(x, loss)
    assert [p.x for p in chart.points()] == [0.05, 0.3, 0.6, 0.8, 0.9], "a restarted fit starts a fresh line"
    for x in (0.91, 0.92, 0.93, 0.94):
        chart.add_point(x, 0.3)
    chart.add_point(0.95, 180.0)  # one diverging step
    low, high = chart._loss_range()
    assert low == 0 and high < 10, "one outlier must not flatten the rest of the line"
    chart.clear(epochs=1)
    for x, loss in ((0.0, 1.4), (0.5, 0.06), (1.0, 0.06)):  # a linear probe: few reports, a steep first drop
        chart.add_point(x, loss)
    assert chart._loss_range()[1] >= 1.4, "with a few points none is an outlier; all stay in view"


def test_error_text_follows_a_switch_to_a_dark_palette(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtGui import QColor, QPalette

    widget = TrainingPanel()
    qtbot.addWidget(widget)
    assert "#c62828" in widget.message_label.styleSheet()  # dark red on the light default
    dark = QPalette(widget.palette())
    dark.setColor(QPalette.ColorRole.Window, QColor(30, 30, 30))
    dark.setColor(QPalette.ColorRole.WindowText, QColor(230, 230, 230))
    widget.setPalette(dark)
    assert "#ff8a80" in widget.message_label.styleSheet()  # light red, readable on dark
