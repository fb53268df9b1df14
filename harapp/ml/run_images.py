"""The decoded-image cache of one training run: which entries it has, built the first time the run needs them,
by one process per machine when the run spans several (torchrun)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from harapp.core.types import LabelledItem, LabelSnapshot
from harapp.ml import distributed
from harapp.ml.decode import Entry, Region
from harapp.ml.decoded_cache import DecodedCache, ReadingMark, SlotReader, cache_folder, limit_bytes_from_settings
from harapp.ml.progress import Reporter


class Views(Protocol):
    """What the cache needs of a set of views: their names and each item's regions (see batches.ViewSet)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def regions(self, item: LabelledItem) -> tuple[Region, ...]: ...


class RunImages:
    """The decoded-image cache of one training run: which entries it has, built as the run first needs them.

    On the first training loader every labelled item of the run is cached (train, val and test are all read
    soon); otherwise only the items asked for (a linear probe with cached features decodes nothing). Across
    ranks, rank 0 of each machine builds (the file lock keeps machines that share a file system from building
    twice) while the others wait, and all ranks then read what the cache holds.
    """

    def __init__(self, snapshot: LabelSnapshot, reporter: Reporter, processes: int | None = None) -> None:
        self.snapshot = snapshot
        self.reporter = reporter
        self.processes = processes
        # Rank 0's setting, so that every rank agrees on whether there is a cache (and on its collectives).
        limit = distributed.from_leader(limit_bytes_from_settings())
        self.folder: Path | None = (
            cache_folder(snapshot.project_path) if snapshot.project_path is not None and limit > 0 else None
        )
        self.limit_bytes = limit
        self._known: dict[tuple[int, str], dict[tuple[str, str], int]] = {}
        self._marks: dict[tuple[int, str], ReadingMark | None] = {}
        self._paths: set[str] | None = None
        self.notes: list[str] = []
        self.adding = True

    def slots(
        self, items: Sequence[LabelledItem], views: Views, size: int, interpolation: str, all_items: bool
    ) -> tuple[SlotReader | None, npt.NDArray[np.int64] | None]:
        """A reader and the slot of each item's views (-1: decode on the fly); (None, None) without a cache."""
        if self.folder is None or not items:
            return None, None
        cache = DecodedCache(self.folder, size, interpolation)
        builds = distributed.ranks().local_rank == 0
        if builds and (size, interpolation) not in self._marks:  # before the first lookup: what it finds stays
            self._marks[(size, interpolation)] = self._mark(cache)
        known = self._known.setdefault((size, interpolation), {})
        wanted = self.snapshot.items if all_items else items
        entries = {
            (e.path, e.region.key()): e for it in wanted for e in (Entry(str(it.path), r) for r in views.regions(it))
        }
        missing = [e for key, e in entries.items() if key not in known]
        if missing:
            slots = self._ensure(cache, missing, self._marks.get((size, interpolation)))
            known.update({(e.path, e.region.key()): int(s) for e, s in zip(missing, slots, strict=True)})
        if (size, interpolation) not in self._marks:
            # The other ranks of a machine mark after its builder is done: their marks would stop it from
            # reusing any slot.
            self._marks[(size, interpolation)] = self._mark(cache)
        table = np.array(
            [[known[(str(it.path), r.key())] for r in views.regions(it)] for it in items], dtype=np.int64
        ).reshape(len(items), len(views.names))
        return (cache.reader() if (table >= 0).any() else None), table

    @staticmethod
    def _mark(cache: DecodedCache) -> ReadingMark | None:
        try:
            return cache.mark_reading()
        except OSError:  # a folder that cannot be written: ensure() says so and photos are decoded on the fly
            return None

    def close(self) -> None:
        """The run reads no more: other processes may make room in its cache files again."""
        for mark in self._marks.values():
            if mark is not None:
                mark.close()
        self._marks.clear()

    def _ensure(self, cache: DecodedCache, entries: list[Entry], mark: ReadingMark | None) -> npt.NDArray[np.int64]:
        if not self.adding:  # what the cache has, without decoding anything into it
            return cache.lookup(entries)
        builds = distributed.ranks().local_rank == 0
        slots = distributed.agreed(lambda: self._build(cache, entries, mark) if builds else None)
        return slots if slots is not None else cache.lookup(entries)

    def _photos(self) -> set[str]:
        """Every photo this run may read: their rows are never given to other photos while it runs."""
        if self._paths is None:
            self._paths = {str(it.path) for it in self.snapshot.items}
        return self._paths | {path for known in self._known.values() for path, _ in known}

    def stop_adding(self) -> None:
        """From now on, read what the cache holds and decode the rest on the fly without caching it: for the
        project's other photos, predicted once after training (they would fill the cache for one read)."""
        self.adding = False

    def _build(self, cache: DecodedCache, entries: list[Entry], mark: ReadingMark | None) -> npt.NDArray[np.int64]:
        previous = self.reporter.phase
        self.reporter.start_phase("decoding")
        reported = [0]

        def progress(done: int, total: int) -> None:
            self.reporter.step(epoch=1, epochs=1, step=done, steps=total, images=done - reported[0])
            reported[0] = done

        try:
            ensured = cache.ensure(
                entries, limit_bytes=self.limit_bytes, processes=self.processes, progress=progress, reading=mark,
                keep=self._photos(),
            )  # fmt: skip
        finally:
            self.reporter.start_phase(previous)
        if ensured.note:
            self.notes.append(ensured.note)
        return ensured.slots


_RUN: contextvars.ContextVar[RunImages | None] = contextvars.ContextVar("harapp_run_images", default=None)


@contextlib.contextmanager
def run_images(snapshot: LabelSnapshot, reporter: Reporter) -> Iterator[RunImages]:
    """Make the run's decoded-image cache the one the loaders of this thread use (nested runs share it)."""
    active = _RUN.get()
    if active is not None and active.snapshot is snapshot:
        yield active
        return
    run = RunImages(snapshot, reporter)
    token = _RUN.set(run)
    try:
        yield run
    finally:
        _RUN.reset(token)
        run.close()


def current_run() -> RunImages | None:
    return _RUN.get()
