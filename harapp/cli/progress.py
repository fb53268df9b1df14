"""Progress bars for the command line, fed by the (stage, done, total) callbacks of core and ml jobs.

On a terminal each stage gets a tqdm bar. Written to a file or a pipe, redrawn bars would fill the log with
carriage returns, so each stage prints one line when it ends instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tqdm import tqdm

# No rate: a stage's "items" differ (files, images, steps), and a rate over a burst of quick ones misleads.
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]{postfix}"


class StageBars:
    """One bar per stage; a new stage name closes the previous one."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._bar: tqdm | None = None
        self._stage = ""
        self._done = 0
        self._total = 0
        self._started = 0.0
        self._postfix = ""

    def __call__(self, stage: str, done: int, total: int, postfix: str = "") -> None:
        if stage != self._stage:
            self.close()
            self._stage, self._started = stage, time.monotonic()
            if self.interactive:
                self._bar = tqdm(
                    total=total or None, desc=stage, file=self.stream, leave=True, dynamic_ncols=True,
                    mininterval=0.2, bar_format=BAR_FORMAT if total else None,
                )  # fmt: skip
        self._done, self._total, self._postfix = done, total, postfix
        if self._bar is not None:
            if total and self._bar.total != total:
                self._bar.total = total
            if postfix:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(done - self._bar.n)  # redraws at most every mininterval

    def close(self) -> None:
        if self._bar is not None:
            self._bar.n = self._done
            self._bar.close()
            self._bar = None
        elif self._stage and not self.interactive:
            count = f"{self._done}/{self._total}" if self._total else str(self._done)
            postfix = f" ({self._postfix})" if self._postfix else ""
            print(f"{self._stage}: {count}{postfix} in {time.monotonic() - self._started:.1f} s", file=self.stream)
        self._stage = ""


@contextmanager
def stage_bars(stream: TextIO | None = None) -> Iterator[StageBars]:
    bars = StageBars(stream)
    try:
        yield bars
    finally:
        bars.close()
