"""Classification metrics on a held-out split, as plain data a checkpoint and the GUI can carry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harapp.ml.calibration import Calibration


@dataclass(frozen=True)
class Metrics:
    accuracy: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # name -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    class_names: tuple[str, ...]
    test_image_ids: tuple[int, ...]
    test_predictions: tuple[int, ...]
    test_targets: tuple[int, ...] = ()
    test_probabilities: tuple[tuple[float, ...], ...] = ()
    """Calibrated class probabilities of each held-out image, as the project's predictions store them."""
    calibration: Calibration | None = None

    @property
    def ece(self) -> float | None:
        return self.calibration.ece if self.calibration is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {k: dict(v) for k, v in self.per_class.items()},
            "confusion": [list(r) for r in self.confusion],
            "class_names": list(self.class_names),
            "test_image_ids": list(self.test_image_ids),
            "test_predictions": list(self.test_predictions),
            "test_targets": list(self.test_targets),
            "test_probabilities": [list(p) for p in self.test_probabilities],
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metrics:
        return cls(
            float(d["accuracy"]),
            float(d["macro_f1"]),
            {k: {kk: float(vv) for kk, vv in v.items()} for k, v in d["per_class"].items()},
            [[int(x) for x in row] for row in d["confusion"]],
            tuple(d["class_names"]),
            tuple(int(x) for x in d.get("test_image_ids", ())),
            tuple(int(x) for x in d.get("test_predictions", ())),
            tuple(int(x) for x in d.get("test_targets", ())),
            tuple(tuple(float(v) for v in row) for row in d.get("test_probabilities", ())),
            Calibration.from_dict(d["calibration"]) if d.get("calibration") else None,
        )


def compute_metrics(
    targets: Sequence[int],
    predictions: Sequence[int],
    class_names: Sequence[str],
    image_ids: Sequence[int] = (),
    probabilities: Sequence[Sequence[float]] = (),
    calibration: Calibration | None = None,
) -> Metrics:
    n = len(class_names)
    confusion = [[0] * n for _ in range(n)]
    for t, p in zip(targets, predictions, strict=True):
        confusion[t][p] += 1
    total = len(targets)
    correct = sum(confusion[i][i] for i in range(n))
    per_class: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(class_names):
        support = sum(confusion[i])
        predicted = sum(confusion[r][i] for r in range(n))
        precision = confusion[i][i] / predicted if predicted else 0.0
        recall = confusion[i][i] / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}
        if support:  # macro-F1 over classes present in the split; an absent class says nothing
            f1s.append(f1)
    return Metrics(
        accuracy=correct / total if total else 0.0,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        per_class=per_class,
        confusion=confusion,
        class_names=tuple(class_names),
        test_image_ids=tuple(int(i) for i in image_ids),
        test_predictions=tuple(int(p) for p in predictions),
        test_targets=tuple(int(t) for t in targets),
        test_probabilities=tuple(tuple(float(v) for v in row) for row in probabilities),
        calibration=calibration,
    )


def format_metrics(m: Metrics) -> str:
    """A text report: accuracy, macro-F1, per-class table and the confusion matrix."""
    width = max([len(c) for c in m.class_names] + [9])
    ece = f"   ECE {m.ece:.3f}" if m.ece is not None else ""
    lines = [f"accuracy {m.accuracy:.3f}   macro-F1 {m.macro_f1:.3f}{ece}   (n={len(m.test_targets)})", ""]
    lines.append(f"{'class':<{width}}  precision  recall     f1  support")
    for name in m.class_names:
        pc = m.per_class[name]
        lines.append(
            f"{name:<{width}}  {pc['precision']:9.3f}  {pc['recall']:6.3f}  {pc['f1']:5.3f}  {int(pc['support']):7d}"
        )
    lines += ["", "confusion (rows: true, columns: predicted)"]
    short = [c[:8] for c in m.class_names]
    lines.append(" " * width + "".join(f"{c:>9}" for c in short))
    for name, row in zip(m.class_names, m.confusion, strict=True):
        lines.append(f"{name:<{width}}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)
