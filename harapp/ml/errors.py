"""The errors the ml layer raises; each HarappError carries a message fit to show a user."""

from __future__ import annotations

from harapp.core.errors import HarappError


class ConfigError(HarappError):
    """A TrainConfig value is out of range or a kind/mode pair is unsupported."""


class WeightsUnavailableError(HarappError):
    """Pretrained weights are not on disk and cannot be downloaded."""


class WeightsFileError(WeightsUnavailableError):
    """A weights file is not weights, is damaged, would run code when loaded, or does not fit the model."""


class WeightsCacheError(HarappError):
    """The weights cache folder cannot take a file: read-only, full, or not a folder."""


class OutOfMemoryError(HarappError):
    """The accelerator ran out of memory; the message suggests a smaller batch."""


class CheckpointError(HarappError):
    """A checkpoint file is missing, corrupt, or does not fit the project."""


class TrainingCancelled(Exception):  # noqa: N818 - name fixed by the API contract
    """Raised inside the training loop when the cancel event is set; never escapes train()."""
