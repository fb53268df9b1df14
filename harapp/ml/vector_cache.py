"""Vectors cached per image and person box, as one blob per image in the project's vector cache.

A photo's person view and pose depend on which box they were computed for; keeping the box beside each
vector lets a changed or different box miss the cache instead of returning another person's vector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harapp.core.types import Box

BOX_TOLERANCE = 0.5
"""Pixels: boxes this close are the same box (they round-trip through float32)."""


@dataclass
class BoxRows:
    """Rows of `width` float32 values, each stored after the 4 numbers of its box."""

    width: int
    rows: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def decode(cls, blob: bytes, width: int) -> BoxRows:
        if not blob or len(blob) % (4 * (4 + width)):
            return cls(width)  # empty, or written for another row width: nothing usable
        table = np.frombuffer(blob, dtype=np.float32).reshape(-1, 4 + width)
        return cls(width, [row.copy() for row in table])

    def encode(self) -> bytes:
        return np.stack(self.rows).astype(np.float32).tobytes() if self.rows else b""

    def find(self, box: Box) -> np.ndarray | None:
        wanted = np.asarray(box, dtype=np.float32)
        for row in self.rows:
            if np.all(np.abs(row[:4] - wanted) <= BOX_TOLERANCE):
                return row[4:]
        return None

    def add(self, box: Box, values: np.ndarray) -> None:
        if values.shape != (self.width,):
            raise ValueError(f"a row holds {self.width} values, got shape {values.shape}")
        self.rows = [r for r in self.rows if not np.all(np.abs(r[:4] - np.asarray(box, np.float32)) <= BOX_TOLERANCE)]
        self.rows.append(np.concatenate([np.asarray(box, np.float32), values.astype(np.float32)]))
