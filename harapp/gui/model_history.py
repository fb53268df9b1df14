"""A trained model's record brought back on screen: its test metrics (from the models table) and its training
history (from the checkpoint, read in a worker: a torch file), drawn on the chart with the axis of its mode."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from harapp.core.types import ModelRecord
from harapp.gui.chart import TrainingChart
from harapp.gui.workers import JobHandle, run_callable, start_worker
from harapp.ml.metrics import Metrics
from harapp.ml.mode_fields import fit_axis


def metrics_of(model: ModelRecord) -> Metrics | None:
    """The test metrics the models table stored with the model, or None (an old or a failed record)."""
    try:
        return Metrics.from_dict(model.metrics) if model.metrics and "confusion" in model.metrics else None
    except (KeyError, TypeError, ValueError):
        return None


def prepare_chart(chart: TrainingChart, model: ModelRecord) -> bool:
    """Empty the chart for the model's history; False when there is nothing to read (the reason is shown)."""
    axis = fit_axis(model.mode)
    if axis is None:
        chart.clear(placeholder="Zero-shot trains nothing: there is no loss to chart.")
        return False
    path = Path(model.path)
    if not path.is_file():
        chart.clear(title=axis, placeholder=f"No chart: the checkpoint {path.name} is missing.")
        return False
    chart.clear(title=axis, placeholder="Reading the training history…")
    return True


def read_history(path: Path, parent: QObject) -> JobHandle:
    """A job whose result is the checkpoint's training history (a list of plain dicts)."""

    def read(_cancel: object) -> list[dict]:
        from harapp.ml.checkpoint import load_checkpoint

        return list(load_checkpoint(path).extra.get("history") or [])

    return start_worker(run_callable(read), name="harapp-history", parent=parent)


def draw_history(chart: TrainingChart, history: list[dict], mode: str) -> None:
    """One point per epoch (the live chart draws one per step, on the same axis); a linear probe's solver run
    ends in one point at its last step."""
    axis = fit_axis(mode) or "epoch"
    # A fine-tune's head warm-up is recorded too ("stage": "linear-probe"): it is no epoch.
    epochs = [h for h in history if "epoch" in h and h.get("stage") != "linear-probe"]
    if not epochs:
        chart.set_placeholder("This model's checkpoint holds no training history.")
        return
    if axis == "solver step":
        last = epochs[-1]
        x = float(last.get("iterations") or 1)
        chart.clear(x, axis)
        chart.add_point(x, last.get("loss"), last.get("val_accuracy"))
        return
    chart.clear(max(float(h["epoch"]) for h in epochs), axis)
    for h in epochs:
        chart.add_point(float(h["epoch"]), h.get("loss"))
        if h.get("val_accuracy") is not None:
            chart.set_accuracy(float(h["epoch"]), float(h["val_accuracy"]))
