"""Photos decoded once, as uint8 pixels at the size a model reads, in a memory-mapped file beside the project.

An entry is one photo (its path, checked by file size and modification time), one region of it (the whole
photo, or a box such as the square around the main person) and one output size: `size x size x 3` bytes. All
entries of one size live in fixed slots of `<project>.cache/decoded-<size>-<hash>.u8`; an SQLite index beside it
maps (path, region) to a slot. Epochs then read pixels with a memory copy instead of a JPEG decode.

Writers take an exclusive lock on the file (one builder per machine, or per shared file system), write pixels
with pwrite (a full disk is an OSError, never the SIGBUS a write into a memory map would get), flush them, and
only then add their index rows, so a crash leaves unused slots, never an index row over missing pixels. The
cache holds no labels: losing or deleting it costs a rebuild, nothing else.

A run that reads a file holds a shared lock on `<stem>.readers` (ReadingMark) for as long as it may read. Room is
made only where no one else reads: another size's file is deleted, and slots of photos that moved or changed
are given to new photos, only when their readers lock is free.

The decoding itself runs in harapp.ml.decode_workers.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from harapp.core.errors import ImageFileError
from harapp.core.paths import load_settings
from harapp.ml.decode import Entry
from harapp.ml.decode_workers import Done, Job, decode_in_parallel, slot_bytes
from harapp.ml.persons import FILL

try:  # Unix; elsewhere one process at a time is assumed
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Part of every file name: a change to how entries are decoded makes new files rather than reusing old pixels."""

GB = 1_000_000_000
MIN_FREE_BYTES = 1 << 30
MIN_FREE_SHARE = 0.05
"""The cache never fills a disk: it leaves max(1 GiB, 5% of the file system) free for everything else."""


def cache_folder(project_path: Path) -> Path:
    """`<folder>/<name>.cache` beside `<folder>/<name>.harapp`, like the `.models` folder of checkpoints."""
    project_path = Path(project_path)
    return project_path.parent / f"{project_path.stem}.cache"


def limit_bytes_from_settings() -> int:
    """settings.json's decoded_cache_gb in bytes (a value that is not a number counts as the default)."""
    value = load_settings().decoded_cache_gb
    try:
        gb = float(value)
    except (TypeError, ValueError):
        log.warning("settings.json: decoded_cache_gb %r is not a number; using 20", value)
        gb = 20.0
    return max(0, int(gb * GB)) if math.isfinite(gb) else 0


@dataclass(frozen=True)
class Ensured:
    """What ensure() did: a slot per entry asked for (-1: not cached, decode it on the fly), and why not all."""

    slots: npt.NDArray[np.int64]
    decoded: int
    """Entries decoded into the cache by this call."""
    note: str | None = None
    """Why some entries stay uncached (the cap, a short or full disk), for the person to read; None if none."""


class SlotReader:
    """Reads slots of one cache file; picklable (the memory map opens lazily in each process that reads)."""

    def __init__(self, path: Path, size: int, n_slots: int) -> None:
        self.path = Path(path)
        self.size = size
        self.n_slots = n_slots
        self._map: np.memmap[Any, np.dtype[np.uint8]] | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_map"] = None  # a loader worker started by spawn maps the file itself instead of copying it
        return state

    def read(self, slots: npt.NDArray[np.int64], out: npt.NDArray[np.uint8]) -> None:
        """Copy the given slots into out[i] in order: one copy from the memory map into out."""
        if self._map is None:
            shape = (self.n_slots, self.size, self.size, 3)
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=shape)
        np.take(self._map, slots, axis=0, out=out, mode="clip")  # "raise" would copy through a buffer


class ReadingMark:
    """A shared lock on a cache file's readers lock, held while a run may read the file: no other process deletes
    the file or reuses its slots meanwhile. Without flock (Windows) it marks nothing."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: Any = open(self.path, "a+b")  # noqa: SIM115 - held until close()
        if fcntl is not None:
            fcntl.flock(self._handle, fcntl.LOCK_SH)

    def alone(self) -> bool:
        """True when no other process (or other mark of this one) holds the file now."""
        if fcntl is None or self._handle is None:
            return self._handle is not None
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            alone = False
        else:
            alone = True
        # A failed conversion has dropped the shared lock too (flock converts by unlocking first): take it again.
        fcntl.flock(self._handle, fcntl.LOCK_SH)
        return alone

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the last descriptor releases the lock
            self._handle = None


def _nobody_reads(readers: Path) -> bool:
    """True when no process holds a ReadingMark on this readers lock."""
    if fcntl is None:
        return True
    with open(readers, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


class DecodedCache:
    """The decoded entries of one output size and interpolation under one cache folder."""

    def __init__(self, folder: Path, size: int, interpolation: str = "bilinear") -> None:
        self.folder = Path(folder)
        self.size = size
        self.interpolation = interpolation
        tag = hashlib.sha1(f"v{FORMAT_VERSION}|{size}|{interpolation}|{FILL}".encode()).hexdigest()[:10]
        self.stem = f"decoded-{size}-{tag}"
        self.data_path = self.folder / f"{self.stem}.u8"
        self.index_path = self.folder / f"{self.stem}.index"
        self.lock_path = self.folder / f"{self.stem}.lock"
        self.readers_path = self.folder / f"{self.stem}.readers"
        self.slot_bytes = slot_bytes(size)

    # -- reading ------------------------------------------------------------------------------------------------

    def n_slots(self) -> int:
        try:
            return self.data_path.stat().st_size // self.slot_bytes
        except FileNotFoundError:
            return 0

    def reader(self) -> SlotReader:
        return SlotReader(self.data_path, self.size, self.n_slots())

    def mark_reading(self) -> ReadingMark:
        """Say that this process may read the file until the mark is closed (see ReadingMark)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return ReadingMark(self.readers_path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.index_path, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS entries (path TEXT NOT NULL, region TEXT NOT NULL, slot INTEGER NOT NULL"
            " UNIQUE, file_size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, PRIMARY KEY (path, region))"
        )
        return conn

    def _rows(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        if not self.index_path.exists():
            return {}
        try:
            with contextlib.closing(self._connect()) as conn:
                rows = conn.execute("SELECT path, region, slot, file_size, mtime_ns FROM entries").fetchall()
        except (OSError, sqlite3.Error) as exc:  # an unreadable index: as if nothing were cached
            log.warning("decoded-image cache: cannot read %s (%s); photos are decoded on the fly", self.index_path, exc)
            return {}
        return {(p, r): (slot, fs, mt) for p, r, slot, fs, mt in rows}

    def lookup(self, entries: Sequence[Entry]) -> npt.NDArray[np.int64]:
        """The slot of each entry whose photo is unchanged since it was decoded; -1 for the others.

        A photo that is absent but cached is read from the cache: that is how a cache shipped to a machine
        without the photos serves it.
        """
        rows = self._rows()
        n_slots = self.n_slots()
        stats: dict[str, tuple[int, int] | None] = {}
        slots = np.full(len(entries), -1, dtype=np.int64)
        for i, entry in enumerate(entries):
            row = rows.get((entry.path, entry.region.key()))
            if row is None or row[0] >= n_slots:
                continue
            if entry.path not in stats:
                try:
                    st = os.stat(entry.path)
                    stats[entry.path] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    stats[entry.path] = None
            identity = stats[entry.path]
            if identity is None or identity == row[1:]:
                slots[i] = row[0]
        return slots

    # -- building -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One builder at a time per cache file, across processes (torchrun ranks, the app and the CLI)."""
        with open(self.lock_path, "a+b") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(handle, fcntl.LOCK_UN)

    def _room(self, limit_bytes: int) -> tuple[int, str | None]:
        """Bytes this file may still grow by under the cap and the disk's free space, and what limits it."""
        others = sum(p.stat().st_size for p in self.folder.glob("decoded-*.u8") if p != self.data_path)
        mine = self.data_path.stat().st_size if self.data_path.exists() else 0
        usage = shutil.disk_usage(self.folder)
        keep_free = max(MIN_FREE_BYTES, int(MIN_FREE_SHARE * usage.total))
        by_cap = limit_bytes - others - mine
        by_disk = usage.free - keep_free
        if by_cap <= by_disk:
            return max(0, by_cap), (
                f"the cache of one project may take {limit_bytes / GB:g} GB (decoded_cache_gb in settings.json)"
            )
        return max(0, by_disk), (
            f"{self.folder} has {usage.free / GB:.1f} GB free and the cache leaves {keep_free / GB:.1f} GB of it"
        )

    def _evict_other_sizes(self) -> None:
        """Delete the caches of other sizes that no process builds or reads, least recently used first, to make
        room."""
        others = [p for p in self.folder.glob("decoded-*.index") if p != self.index_path]
        for index in sorted(others, key=lambda p: p.stat().st_mtime):
            stem = index.name.removesuffix(".index")
            lock = self.folder / f"{stem}.lock"
            with open(lock, "a+b") as handle:
                if fcntl is not None:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except OSError:
                        continue  # being built right now
                if not _nobody_reads(self.folder / f"{stem}.readers"):
                    continue  # a run reads it (a worker that has not mapped it yet would find it gone)
                for suffix in (".u8", ".index", ".index-wal", ".index-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        (self.folder / f"{stem}{suffix}").unlink()
            log.info("decoded-image cache: removed %s to make room", stem)

    def _grow(self, n_slots: int) -> None:
        """Give the data file n_slots slots, with disk blocks reserved where the file system can (ENOSPC now)."""
        with open(self.data_path, "ab") as handle:
            fd = handle.fileno()
            old = os.fstat(fd).st_size
            new = n_slots * self.slot_bytes
            if new <= old:
                return
            try:
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, old, new - old)
                else:  # pragma: no cover - macOS: sparse; pwrite reports a full disk later
                    os.ftruncate(fd, new)
            except OSError as exc:
                if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                    os.ftruncate(fd, new)
                    return
                os.ftruncate(fd, old)
                raise

    def ensure(
        self,
        entries: Sequence[Entry],
        *,
        limit_bytes: int,
        processes: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        reading: ReadingMark | None = None,
        keep: Collection[str] = (),
    ) -> Ensured:
        """Decode the entries the cache lacks (in `processes` worker processes) and return every entry's slot.

        progress(done, total) is called as entries finish and may raise to stop the build (a cancel): what is
        done by then stays cached. Entries beyond the cap or the disk's room stay uncached, with a note saying
        why. A photo that cannot be read raises ImageFileError naming it, after the others are cached.
        reading: the caller's own mark on this file, if it holds one (it does not count as another reader).
        keep: photos whose rows stay even when they look stale (the caller's run may still read them).
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self._locked():
                slots = self.lookup(entries)
                todo: dict[tuple[str, str], list[int]] = {}
                for i in np.flatnonzero(slots < 0):
                    entry = entries[i]
                    todo.setdefault((entry.path, entry.region.key()), []).append(int(i))
                if not todo:
                    return Ensured(slots, 0)
                with contextlib.suppress(OSError):
                    os.utime(self.index_path)  # the index's time is the cache's last use, for eviction
                return self._build(entries, slots, todo, limit_bytes, processes, progress, reading, keep)
        except (OSError, sqlite3.Error) as exc:
            # A folder that cannot be written (read-only, a file in the way, a broken index): training goes on.
            note = f"cannot use {self.folder} ({exc}); photos are decoded on the fly each epoch"
            log.warning("decoded-image cache: %s", note)
            return Ensured(np.full(len(entries), -1, np.int64), 0, note)

    def _build(
        self,
        entries: Sequence[Entry],
        slots: npt.NDArray[np.int64],
        todo: dict[tuple[str, str], list[int]],
        limit_bytes: int,
        processes: int | None,
        progress: Callable[[int, int], None] | None,
        reading: ReadingMark | None,
        keep: Collection[str],
    ) -> Ensured:
        conn = self._connect()
        try:
            # Rows of changed photos go; their slots, and slots a crash left unindexed, are reused first.
            conn.executemany("DELETE FROM entries WHERE path = ? AND region = ?", list(todo))
            conn.commit()
            used = {row[0] for row in conn.execute("SELECT slot FROM entries")}
            n_slots = self.n_slots()
            free = [s for s in range(n_slots) if s not in used]
            keys = list(todo)
            wanted_new = max(0, len(keys) - len(free))
            note = None
            room, reason = self._room(limit_bytes)
            short = wanted_new - room // self.slot_bytes
            if short > 0 and (reading.alone() if reading is not None else _nobody_reads(self.readers_path)):
                # Pixels of photos that are gone or changed are worth less than anything else the cap keeps.
                kept = set(keep) | {e.path for e in entries}
                free += self._reclaim_stale(conn, short, kept)
                wanted_new = max(0, len(keys) - len(free))
            if room < wanted_new * self.slot_bytes:
                self._evict_other_sizes()
                room, reason = self._room(limit_bytes)
            fit_new = min(wanted_new, room // self.slot_bytes)
            if fit_new < wanted_new:
                left_out = wanted_new - fit_new
                note = f"{left_out} of {len(keys)} photos are decoded on the fly each epoch: {reason}"
            if fit_new:
                try:
                    self._grow(n_slots + fit_new)
                except OSError as exc:
                    note = f"cannot grow {self.data_path}: {exc.strerror or exc}; photos are decoded on the fly"
                    fit_new = 0
            given = (free + list(range(n_slots, n_slots + fit_new)))[: len(keys)]
            placed = zip(keys[: len(given)], given, strict=True)  # keys past the room stay uncached
            jobs = [Job(i, entries[todo[key][0]], slot) for i, (key, slot) in enumerate(placed)]
            done, errors, disk_error = self._run_jobs(conn, keys, jobs, processes, progress)
        finally:
            conn.close()
        if disk_error:
            note = f"{disk_error}; the photos not cached are decoded on the fly"
        if note:
            log.warning("decoded-image cache %s: %s", self.data_path, note)
        for key, slot in done.items():
            slots[todo[key]] = slot
        if errors:
            more = f" ({len(errors) - 1} more photos cannot be read either)" if len(errors) > 1 else ""
            raise ImageFileError(errors[0] + more)
        return Ensured(slots, len(done), note)

    def _reclaim_stale(self, conn: sqlite3.Connection, wanted: int, kept: set[str]) -> list[int]:
        """Up to `wanted` slots whose photo is gone or changed since it was decoded (a moved folder, a deleted or
        rewritten photo), with their rows removed. Rows of the kept photos stay: an absent photo's row is how a
        cache shipped without the photos serves them."""
        identity: dict[str, tuple[int, int] | None] = {}
        stale: list[tuple[str, str, int]] = []
        for path, region, slot, file_size, mtime_ns in conn.execute(
            "SELECT path, region, slot, file_size, mtime_ns FROM entries"
        ).fetchall():
            if path in kept:
                continue
            if path not in identity:
                try:
                    st = os.stat(path)
                    identity[path] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    identity[path] = None
            if identity[path] != (file_size, mtime_ns):
                stale.append((path, region, slot))
                if len(stale) >= wanted:
                    break
        conn.executemany("DELETE FROM entries WHERE path = ? AND region = ?", [(p, r) for p, r, _ in stale])
        conn.commit()
        if stale:
            log.info("decoded-image cache %s: %d slots of moved or changed photos reused", self.data_path, len(stale))
        return [slot for _, _, slot in stale]

    def _run_jobs(
        self,
        conn: sqlite3.Connection,
        keys: list[tuple[str, str]],
        jobs: list[Job],
        processes: int | None,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[dict[tuple[str, str], int], list[str], str | None]:
        """Decode and write the jobs; index rows are added in batches after their pixels are flushed to disk."""
        done: dict[tuple[str, str], int] = {}
        errors: list[str] = []
        disk_error: str | None = None
        pending: list[Job] = []
        last_commit = time.monotonic()
        fd = os.open(self.data_path, os.O_RDONLY) if jobs else -1

        def commit() -> None:
            nonlocal last_commit
            if pending:
                os.fsync(fd)  # the pixels reach the disk before the rows that vouch for them
                rows = []
                for job in pending:
                    try:
                        st = os.stat(job.entry.path)
                    except OSError:
                        continue
                    rows.append((*keys[job.at], job.slot, st.st_size, st.st_mtime_ns))
                    done[keys[job.at]] = job.slot
                conn.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)", rows)
                conn.commit()
                pending.clear()
            last_commit = time.monotonic()

        def record(results: list[Done]) -> None:
            nonlocal disk_error
            for result in results:
                if result.error is None:
                    pending.append(jobs[result.at])
                elif result.disk_full:
                    disk_error = disk_error or result.error
                else:
                    errors.append(result.error)

        total, finished = len(jobs), 0
        results_so_far = decode_in_parallel(str(self.data_path), self.size, self.interpolation, jobs, processes)
        try:
            for results in results_so_far:
                record(results)
                finished += len(results)
                if time.monotonic() - last_commit > 1.0:
                    commit()
                if progress is not None:
                    progress(finished, total)
                if disk_error:
                    break
        finally:
            results_so_far.close()  # waits for the chunks in flight: no worker writes a slot after this
            try:
                commit()
            finally:
                if fd >= 0:
                    os.close(fd)
        return done, errors, disk_error
