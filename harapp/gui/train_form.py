"""The training settings form: model kind, mode (only valid pairs enabled), hyperparameters, device.

A field the chosen kind and mode do not use is disabled, and its tooltip says why (the table lives in
harapp.ml.mode_fields, beside the other per-mode knowledge), so no setting looks as if it mattered when it does
not.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from harapp.ml.config import DEFAULT_PROMPTS, TrainConfig
from harapp.ml.defaults import preferred_choice, start_config
from harapp.ml.kinds import KINDS, MODE_LABELS, get_kind
from harapp.ml.mode_fields import unused_fields

PROMPT_SEPARATOR = " | "


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TrainForm(QWidget):
    changed = Signal()
    """Any setting changed (the panel re-estimates the run's time)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        kind, mode = preferred_choice()
        self.kind_combo = QComboBox(self)
        for spec in KINDS.values():
            self.kind_combo.addItem(spec.label, spec.name)
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))
        self.mode_combo = QComboBox(self)
        for mode_name, label in MODE_LABELS.items():
            self.mode_combo.addItem(label, mode_name)
        self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))
        self.epochs_spin = QSpinBox(self, minimum=1, maximum=500)
        self.batch_spin = QSpinBox(self, minimum=1, maximum=1024)
        self.lr_spin = QDoubleSpinBox(self, decimals=5, minimum=0.00001, maximum=1.0, singleStep=0.0001)
        self.size_spin = QSpinBox(self, minimum=16, maximum=640, singleStep=16)
        self.size_spin.setSuffix(" px")
        self.weights_edit = QLineEdit(self)
        self.weights_edit.setPlaceholderText("built in or downloaded")
        self.weights_edit.setClearButtonEnabled(True)
        self.weights_button = browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip("Choose a local weights file")
        browse.clicked.connect(self.choose_weights_file)
        weights_row = QWidget(self)  # a widget, not a bare layout, so the row's label can take a shortcut
        weights_layout = QHBoxLayout(weights_row)
        weights_layout.setContentsMargins(0, 0, 0, 0)
        weights_layout.addWidget(self.weights_edit)
        weights_layout.addWidget(browse)
        self.prompts_edit = QLineEdit(PROMPT_SEPARATOR.join(DEFAULT_PROMPTS), self)
        self.prompts_edit.setCursorPosition(0)
        self.device_label = QLabel("detecting…", self)
        self.device_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._add_tooltips()
        self._fields: dict[str, QWidget] = {
            "epochs": self.epochs_spin,
            "batch_size": self.batch_spin,
            "lr": self.lr_spin,
            "image_size": self.size_spin,
            "weights_path": self.weights_edit,
            "prompts": self.prompts_edit,
        }
        self._tips = {name: widget.toolTip() for name, widget in self._fields.items()}
        self.kind_combo.currentIndexChanged.connect(self._on_kind_changed)
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        for spin in (self.epochs_spin, self.batch_spin, self.size_spin):
            spin.valueChanged.connect(lambda _v: self.changed.emit())
        form = QFormLayout(self)
        self._form = form
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("&Model:", self.kind_combo)
        form.addRow("M&ode:", self.mode_combo)
        form.addRow("&Epochs:", self.epochs_spin)
        form.addRow("&Batch size:", self.batch_spin)
        form.addRow("&Learning rate:", self.lr_spin)
        form.addRow("&Image size:", self.size_spin)
        form.addRow("&Weights file:", weights_row)
        weights_label = form.labelForField(weights_row)
        if isinstance(weights_label, QLabel):
            weights_label.setBuddy(self.weights_edit)
        form.addRow("&Prompts:", self.prompts_edit)
        form.addRow("Device:", self.device_label)
        self._rows = {
            name: form.labelForField(weights_row if name == "weights_path" else w) for name, w in self._fields.items()
        }
        self._running = False
        self._on_kind_changed()

    def _add_tooltips(self) -> None:
        self.kind_combo.setToolTip(
            "Small CNN: trained from scratch, the study's baseline. ResNet and EfficientNet-Lite0: ImageNet CNNs "
            "(EfficientNet's weights come with harapp). CLIP: a vision-language model that also knows the class names."
        )
        self.mode_combo.setToolTip(
            "Linear probe: a frozen backbone with a new head, seconds to retrain (features are cached).\n"
            "Fine-tune: the backbone learns too; slow on a CPU, best on a GPU.\n"
            "Zero-shot (CLIP): no training, the class prompts decide.\nFrom scratch: every weight learns."
        )
        self.epochs_spin.setToolTip("Passes over the training images; early stopping ends sooner if validation stalls")
        self.batch_spin.setToolTip("Images per step; lower it if a GPU runs out of memory")
        self.lr_spin.setToolTip("AdamW learning rate of the head; a pretrained backbone learns at a tenth of it")
        self.size_spin.setToolTip("Side of the square the photos are resized to; larger is slower")
        self.weights_edit.setToolTip(
            "A local weights file (state dict) for ResNet or EfficientNet-Lite0; for CLIP, open_clip's .bin or "
            ".safetensors or OpenAI's .pt, checked against the CLIP model. Leave empty to use the built-in, "
            "downloaded or registered weights (`harapp weights add FILE` registers CLIP weights once, for offline use)"
        )
        self.prompts_edit.setToolTip(
            "CLIP's class prompts, separated by ' | '; {} stands for the class name (e.g. 'a photo of a person {}.')"
        )
        self.device_label.setToolTip("Where training runs: the GPU when there is one, otherwise the CPU")

    def choose_weights_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Weights file", "", "Weights (*.pt *.pth *.bin *.safetensors);;All files (*)"
        )
        if path:
            self.weights_edit.setText(path)

    def prompts(self) -> tuple[str, ...] | None:
        """The edited prompts, or None while they are CLIP's defaults."""
        parts = tuple(p.strip() for p in self.prompts_edit.text().split(PROMPT_SEPARATOR.strip()) if p.strip())
        return None if not parts or parts == DEFAULT_PROMPTS else parts

    def model_kind(self) -> str:
        return str(self.kind_combo.currentData())

    def mode(self) -> str:
        return str(self.mode_combo.currentData())

    def set_choice(self, kind: str, mode: str | None = None) -> None:
        self.kind_combo.setCurrentIndex(self.kind_combo.findData(kind))
        if mode is not None:
            self.mode_combo.setCurrentIndex(self.mode_combo.findData(mode))

    def mode_enabled(self, mode: str) -> bool:
        row = self.mode_combo.findData(mode)
        return row >= 0 and self.mode_combo.model().item(row).isEnabled()  # type: ignore[attr-defined]

    def _on_kind_changed(self) -> None:
        kind = get_kind(self.model_kind())
        model = self.mode_combo.model()
        for row in range(self.mode_combo.count()):
            model.item(row).setEnabled(self.mode_combo.itemData(row) in kind.modes)  # type: ignore[attr-defined]
        if self.mode() not in kind.modes:
            self.mode_combo.setCurrentIndex(self.mode_combo.findData(kind.default_mode))
        self.weights_edit.clear()  # a weights file fits one architecture only
        self._on_mode_changed()

    def _on_mode_changed(self) -> None:
        kind = get_kind(self.model_kind())
        if self.mode() in kind.modes:
            defaults = kind.defaults_for(self.mode())
            self.epochs_spin.setValue(defaults.epochs)
            self.batch_spin.setValue(defaults.batch_size)
            self.lr_spin.setValue(defaults.lr)
            self.size_spin.setValue(defaults.image_size)
        self.set_running(self._running)
        self.changed.emit()

    def unused(self) -> dict[str, str]:
        """{field: why the chosen kind and mode ignore it}."""
        return unused_fields(self.model_kind(), self.mode())

    def set_running(self, running: bool) -> None:
        self._running = running
        for w in (self.kind_combo, self.mode_combo):
            w.setEnabled(not running)
        unused = self.unused()
        for name, widget in self._fields.items():
            why = unused.get(name)
            widget.setEnabled(not running and why is None)
            # Qt shows tooltips on disabled widgets too: the reason is one hover away.
            widget.setToolTip(f"Not used here: {why}" if why else self._tips[name])
            label = self._rows.get(name)
            if label is not None:
                label.setEnabled(why is None)
                label.setToolTip(widget.toolTip())
        self.weights_button.setEnabled(self.weights_edit.isEnabled())

    def build_config(self, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """A validated TrainConfig from the form; ``overrides`` set fields the form does not show."""
        values: dict[str, Any] = {
            "epochs": self.epochs_spin.value(),
            "batch_size": self.batch_spin.value(),
            "lr": float(self.lr_spin.value()),
            "image_size": self.size_spin.value(),
            "weights_path": (self.weights_edit.text().strip() or None) if self.weights_edit.isEnabled() else None,
            "prompts": self.prompts() if get_kind(self.model_kind()).prompt_head else None,
        }
        values.update(overrides or {})
        return start_config(self.model_kind(), self.mode(), **values).validate()
