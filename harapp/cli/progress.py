"""Progress bars for the command line, fed by the (stage, done, total) callbacks of core and ml jobs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"


class StageBars:
    """One tqdm bar per stage; a new stage name closes the previous bar."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None
        self._stage = ""

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            self._bar = tqdm(
                total=total or None,
                desc=stage,
                unit="it",
                file=sys.stderr,
                leave=True,
                dynamic_ncols=True,
                mininterval=0.2,
            )
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def stage_bars() -> Iterator[StageBars]:
    bars = StageBars()
    try:
        yield bars
    finally:
        bars.close()
