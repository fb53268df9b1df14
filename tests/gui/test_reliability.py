"""The Results tab's reliability diagram: drawn from a model's calibration, hidden without one."""

from __future__ import annotations

import dataclasses

from PySide6.QtGui import QColor

from harapp.gui.reliability_view import BAR_COLOUR
from harapp.gui.results_view import ResultsView
from harapp.ml.calibration import Calibration, reliability
from harapp.ml.metrics import compute_metrics


def _metrics(with_calibration: bool):  # type: ignore[no-untyped-def]
    probs = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]]
    targets = [0, 0, 1, 1, 0]
    calibration = Calibration((1.7, 1.7), 0.04, 0.21, tuple(reliability(probs, targets)), "out-of-fold predictions")
    return compute_metrics(
        targets, [0, 0, 1, 0, 0], ("a", "b"), [1, 2, 3, 4, 5], probs, calibration if with_calibration else None
    )


def test_reliability_diagram_shows_the_calibration_of_the_model(qtbot) -> None:  # noqa: ANN001
    view = ResultsView()
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    qtbot.waitExposed(view)
    view.show_metrics(_metrics(True))
    diagram = view.reliability
    assert diagram.isVisible()
    assert diagram.caption() == "ECE 0.040 (uncalibrated 0.210) · temperature 1.70"
    assert "Calibration error (ECE) 0.040" in view.metrics_label.text()
    picture = diagram.grab().toImage()
    bar = QColor(BAR_COLOUR).rgb()
    assert any(picture.pixel(x, y) == bar for x in range(picture.width()) for y in range(0, picture.height(), 3))
    view.show_metrics(_metrics(False))  # an older model without calibration
    assert not diagram.isVisible()


def test_reliability_diagram_names_each_class_temperature(qtbot) -> None:  # noqa: ANN001
    view = ResultsView()
    qtbot.addWidget(view)
    metrics = _metrics(True)
    assert metrics.calibration is not None
    per_class = dataclasses.replace(metrics.calibration, temperatures=(0.8, 1.62))
    view.show_metrics(dataclasses.replace(metrics, calibration=per_class))
    diagram = view.reliability
    assert diagram.caption() == "ECE 0.040 (uncalibrated 0.210) · temperatures 0.80–1.62"
    assert "class it names: a 0.80, b 1.62." in diagram.toolTip()
    view.show_metrics(metrics)  # one temperature for every class: nothing per class to name
    assert "class it names" not in diagram.toolTip()
    older = dataclasses.replace(metrics.calibration, temperatures=(1.7,))  # from a checkpoint of one temperature
    view.show_metrics(dataclasses.replace(metrics, calibration=older))
    assert diagram.caption().endswith("· temperature 1.70") and "class it names" not in diagram.toolTip()


def test_the_results_read_the_ece_against_what_so_few_images_can_show(qtbot) -> None:  # noqa: ANN001
    view = ResultsView()
    qtbot.addWidget(view)
    metrics = _metrics(True)
    assert metrics.calibration is not None
    for floor, verdict in ((0.12, "perfectly calibrated bars would show up to 0.120"), (0.03, "a rough guide")):
        calibration = dataclasses.replace(metrics.calibration, ece_if_calibrated=floor)
        view.show_metrics(dataclasses.replace(metrics, calibration=calibration))
        assert "Calibration error (ECE) 0.040" in view.metrics_label.text() and verdict in view.metrics_label.text()
    view.show_metrics(metrics)  # metrics stored before the comparison existed: the figure alone
    assert view.metrics_label.text().endswith("Calibration error (ECE) 0.040.")
