"""Which training settings a model kind and mode use, and why the others do not apply.

One small table, kept apart so it can move as it is into the model-kind registry (one entry per kind with its
modes and defaults): the GUI form reads it to disable a field with a tooltip that says why, instead of leaving
a field editable that the run ignores. Torch-free, so the GUI thread may import it.
"""

from __future__ import annotations

FIELDS: tuple[str, ...] = ("epochs", "batch_size", "lr", "image_size", "weights_path", "prompts")
"""TrainConfig fields the form shows; batch_size applies everywhere (features are computed in batches too)."""

_SOLVER = "The linear probe fits its head to convergence on cached features (L-BFGS)"
MODE_UNUSED: dict[str, dict[str, str]] = {
    "zero-shot": {
        "epochs": "Zero-shot trains nothing: the class prompts decide, so there are no epochs.",
        "lr": "Zero-shot trains nothing, so there is no learning rate.",
    },
    "linear-probe": {
        "epochs": f"{_SOLVER}: there are no epochs to choose.",
        "lr": f"{_SOLVER}: its solver needs no learning rate.",
    },
    "scratch": {
        "weights_path": "From scratch starts from random weights: a weights file would be ignored.",
    },
}
"""Mode -> {field: why the mode ignores it}."""

KIND_UNUSED: dict[str, dict[str, str]] = {
    "cnn-scratch": {
        "weights_path": "The small CNN has no pretrained weights: it always starts from random ones.",
        "prompts": "Only CLIP reads class prompts.",
    },
    "resnet18": {"prompts": "Only CLIP reads class prompts."},
    "resnet50": {"prompts": "Only CLIP reads class prompts."},
    "efficientnet-lite0": {"prompts": "Only CLIP reads class prompts."},
    "clip": {"image_size": "CLIP resizes photos to the size its weights were trained at (224 px for ViT-B/32)."},
}
"""Model kind -> {field: why the kind ignores it}."""


def unused_fields(kind: str, mode: str) -> dict[str, str]:
    """{field: why it does not apply} for this kind and mode; a field not listed is used by the run."""
    return {**KIND_UNUSED.get(kind, {}), **MODE_UNUSED.get(mode, {})}


def fit_axis(mode: str) -> str | None:
    """What the training chart's x-axis counts for this mode, the same all run long; None: nothing to chart."""
    return {"scratch": "epoch", "fine-tune": "epoch", "linear-probe": "solver step"}.get(mode)
