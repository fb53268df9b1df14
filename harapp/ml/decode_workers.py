"""Decoding entries of the decoded-image cache into their slots of its file: the build's worker processes.

Each worker opens the file itself and writes pixels with pwrite, so a full disk is an OSError it reports, never
the SIGBUS a write into a memory map would get. This module needs no torch, so the workers start fast.
"""

from __future__ import annotations

import concurrent.futures as cf
import gc
import multiprocessing
import os
from collections.abc import Generator
from typing import NamedTuple

from harapp.core.errors import ImageFileError
from harapp.ml.decode import Entry, decode_entry


def slot_bytes(size: int) -> int:
    return size * size * 3


def write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


class Job(NamedTuple):
    at: int
    entry: Entry
    slot: int


class Done(NamedTuple):
    at: int
    error: str | None
    disk_full: bool = False


def decode_jobs(data_path: str, size: int, interpolation: str, jobs: list[Job]) -> list[Done]:
    """A build worker's task: decode entries and write their pixels into their slots (top level: picklable)."""
    done: list[Done] = []
    fd = os.open(data_path, os.O_WRONLY)
    try:
        for job in jobs:
            try:
                pixels = decode_entry(job.entry, size, interpolation)
            except ImageFileError as exc:
                done.append(Done(job.at, str(exc)))
                continue
            try:
                write_all(fd, pixels.tobytes(), job.slot * slot_bytes(size))
            except OSError as exc:
                done.append(Done(job.at, f"cannot write {data_path}: {exc.strerror or exc}", True))
                break  # the disk is full or failing: the rest would fail the same way
            done.append(Done(job.at, None))
    finally:
        os.close(fd)
    return done


CHUNK = 16
"""Entries per task of a build worker: enough to make the task overhead small, few enough for smooth progress."""


def default_processes(n_entries: int) -> int:
    """Build workers: one per core (up to 16), none for a handful of entries (starting them costs more)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(16, cores, n_entries // (4 * CHUNK)))


def decode_in_parallel(
    data_path: str, size: int, interpolation: str, jobs: list[Job], processes: int | None
) -> Generator[list[Done], None, None]:
    """Results of the jobs chunk by chunk, as they finish; in this process when one process is enough."""
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    workers = default_processes(len(jobs)) if processes is None else max(1, processes)
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield decode_jobs(data_path, size, interpolation, chunk)
        return
    # gc.enable: a worker forked from the app inherits its switched-off collector (see harapp.gui.gc_guard).
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(), initializer=gc.enable) as pool:
        futures = [pool.submit(decode_jobs, data_path, size, interpolation, chunk) for chunk in chunks]
        try:
            for future in cf.as_completed(futures):
                yield future.result()
        finally:
            # A cancel (the consumer stops) or an error: drop what has not started; the pool's exit waits for
            # the chunks in flight, so no worker writes a slot after this returns.
            for future in futures:
                future.cancel()
