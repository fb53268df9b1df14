"""Training across processes that torchrun started (DistributedDataParallel): who this process is, the few
collectives the engine needs, and one job's life: join, fail together, leave.

In a single process every helper here is the identity or a no-op, so the engine has one code path. Across N
processes (ranks) every rank runs the same code on its share of each batch: the loaders give each rank an equal
share (padded like torch's DistributedSampler), gradients are averaged by DDP, and whatever decides control
flow (the epoch loss, validation accuracy, a cancel) is agreed on by all ranks, so no rank waits in a
collective that another rank never reaches.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

import torch
import torch.distributed as dist
from torch import nn

from harapp.core.errors import HarappError
from harapp.ml.device import resolve_device
from harapp.ml.errors import ConfigError, TrainingCancelled

T = TypeVar("T")

JOB_TIMEOUT = datetime.timedelta(minutes=60)
"""How long a collective may wait: longer than one machine's rank needs to build the decoded cache of a large
project while the others wait for it. A rank that fails does not make the others wait this long (see
DistributedJob)."""
PATIENT_TIMEOUT = datetime.timedelta(hours=12)
"""How long the other ranks wait for work rank 0 does alone (leader_only): finding people in a large project's
photos the first time takes about 60 ms a photo on one process, and predicting every photo of the project
after training longer still; hours, not the job timeout."""


class PeerFailed(HarappError):
    """Another rank of the job failed; that rank says why."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    """The rank among the processes on this machine (LOCAL_RANK): rank 0 here builds this machine's cache."""

    @property
    def is_leader(self) -> bool:
        """Rank 0: the one that reads and writes the project, checkpoints and progress."""
        return self.rank == 0


def launched_world() -> int:
    """How many processes torchrun started for this job (WORLD_SIZE); 1 when it did not start this one."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


_ALONE: contextvars.ContextVar[bool] = contextvars.ContextVar("harapp_alone", default=False)
_PATIENT: list[Any] = []
"""The gloo group leader_only waits in (DistributedJob makes it): the default group's timeout stays short."""


def ranks() -> Ranks:
    if _ALONE.get() or not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _collective_device() -> torch.device:
    """NCCL moves only GPU tensors; gloo moves CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when it is true on any (a cancel, a failure): all ranks then take the same branch."""
    if ranks().world == 1:
        return flag
    value = torch.tensor([int(flag)], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(total: float, count: int) -> float:
    """total / count summed over the ranks: the epoch's training loss as one process would have computed it."""
    if ranks().world == 1:
        return total / max(count, 1)
    both = torch.tensor([float(total), float(count)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(both)
    return float(both[0] / both[1].clamp_min(1))


def from_leader(obj: T) -> T:
    """Rank 0's object on every rank (pickled): the label snapshot, the features the project had cached."""
    if ranks().world == 1:
        return obj
    box: list[object] = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def gather_rows(positions: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """The n rows in order, when rows[i] of each rank belongs at positions[i].

    Every rank holds the same number of rows (its padded share; a padded row repeats another one, so writing it
    twice does no harm) and gets all n of them back.
    """
    shape = (n, *rows.shape[1:])
    if ranks().world == 1 or n == 0:
        out = torch.zeros(shape, dtype=rows.dtype)
        out[positions] = rows.cpu()
        return out
    device = _collective_device()
    world = ranks().world
    local_pos, local_rows = positions.to(device), rows.to(device).contiguous()
    all_pos = [torch.empty_like(local_pos) for _ in range(world)]
    all_rows = [torch.empty_like(local_rows) for _ in range(world)]
    dist.all_gather(all_pos, local_pos)
    dist.all_gather(all_rows, local_rows)
    out = torch.zeros(shape, dtype=rows.dtype)
    out[torch.cat(all_pos).cpu()] = torch.cat(all_rows).cpu()
    return out


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Within it, this thread acts as a job of one process: every helper here is the identity, loaders take every
    item, features are not gathered. For work rank 0 does by itself (see leader_only)."""
    token = _ALONE.set(True)
    try:
        yield
    finally:
        _ALONE.reset(token)


def agreed(work: Callable[[], T]) -> T:
    """work() on every rank, then an agreement on how it ended: when it was cancelled or failed on any rank, every
    rank raises (its own exception, else TrainingCancelled or PeerFailed), so no rank goes on into a collective
    that another one never reaches."""
    if ranks().world == 1:
        return work()
    outcome: BaseException | None = None
    value: T | None = None
    try:
        value = work()
    except BaseException as exc:  # every rank must still reach the agreement below
        outcome = exc
    cancelled = any_rank(isinstance(outcome, TrainingCancelled))
    failed = any_rank(outcome is not None and not isinstance(outcome, TrainingCancelled))
    if outcome is not None:
        raise outcome
    if cancelled:
        raise TrainingCancelled()
    if failed:
        raise PeerFailed("another rank failed")
    return value  # type: ignore[return-value]


def leader_only(work: Callable[[], T], share: bool = True) -> T | None:
    """work() on rank 0 alone (under alone()), while the other ranks wait; returns its result on every rank (with
    share; else None on the others). A cancel or failure on rank 0 raises on every rank, as in agreed()."""
    if ranks().world == 1:
        return work()
    outcome: BaseException | None = None
    value: T | None = None
    if ranks().is_leader:
        try:
            with alone():
                value = work()
        except BaseException as exc:
            outcome = exc
    status = "ok" if outcome is None else "cancelled" if isinstance(outcome, TrainingCancelled) else "failed"
    box: list[Any] = [(status, value if share else None)]
    dist.broadcast_object_list(box, src=0, group=_PATIENT[0] if _PATIENT else None)
    status, shared = box[0]
    if outcome is not None:
        raise outcome
    if status == "cancelled":
        raise TrainingCancelled()
    if status == "failed":
        raise PeerFailed("rank 0 failed")
    return value if ranks().is_leader else cast("T | None", shared)


def wrap_for_training(model: nn.Module, device: torch.device) -> nn.Module:
    """The module the training steps call: the model itself, or DDP around it across ranks.

    Call it after the optimiser has set which parameters train: DDP syncs those. Its constructor also copies
    rank 0's weights to every rank, so ranks that drifted apart before (a probe head fitted on each) start equal.
    """
    if ranks().world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# -- one job's life ---------------------------------------------------------------------------------------------

_FAILURES = "harapp/failures"
_SEEN = "harapp/failure-seen"


@dataclass(frozen=True)
class Failure:
    rank: int
    message: str


class DistributedJob:
    """One rank of a torchrun job, as a context manager: joins the process group on enter, leaves it on exit.

    A rank that fails calls fail(): it puts its message in torchrun's key-value store and waits (a few seconds)
    until rank 0 has shown it. Rank 0 watches the store from a thread, so it names the failed rank and its
    error even while its main thread is blocked in a collective that will never finish; a gloo collective then
    fails at once, an NCCL one when torchrun stops the job, and a rank still blocked after a grace period ends
    itself. Peers that fail only because a rank vanished stay quiet (peer_failure() tells them so).
    """

    def __init__(self, device_pref: str = "auto", timeout: datetime.timedelta = JOB_TIMEOUT) -> None:
        self.device_pref = device_pref
        self.timeout = timeout
        self.device = torch.device("cpu")
        self.ranks = Ranks()
        self._store: Any = None  # torch.distributed's Store (untyped)
        self._prefix = f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '')}"
        self._stop = threading.Event()
        self._announced = threading.Event()
        self._peer: Failure | None = None
        self._watcher: threading.Thread | None = None
        self._clean = False
        self.grace_s = 30.0
        """How long a rank blocked by a failed peer waits for its collective to fail before it ends itself."""

    def __enter__(self) -> DistributedJob:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(self.device_pref)
        if device.type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"This machine has {torch.cuda.device_count()} GPUs but torchrun started local rank {local_rank};"
                    " give --nproc-per-node at most the number of GPUs."
                )
            torch.cuda.set_device(local_rank)
            device, backend = torch.device("cuda", local_rank), "nccl"
        elif device.type == "cpu":
            backend = "gloo"
        else:
            raise ConfigError(f"Training across processes runs on CUDA GPUs or on the CPU, not on {device.type}.")
        dist.init_process_group(backend, timeout=self.timeout)
        _PATIENT[:] = [dist.new_group(backend="gloo", timeout=PATIENT_TIMEOUT)]
        self.device = device
        self.ranks = ranks()
        try:
            self._store = dist.distributed_c10d._get_default_store()
        except (AttributeError, RuntimeError, ValueError):  # a torch without it: failures are only printed
            self._store = None
        if self._store is not None:
            self._watcher = threading.Thread(target=self._watch, name="harapp-rank-watcher", daemon=True)
            self._watcher.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=2)
        if kind is None and self._clean:
            _PATIENT.clear()
            dist.destroy_process_group()
        # After a failure the group is left as it is: tearing down NCCL with a peer gone can block.

    def run(self, body: Callable[[], int]) -> int:
        """Run this rank's work and turn its end into an exit status, with one message per failure (on rank 0
        for a failure of another rank)."""
        try:
            status = body()
            # Leave together (rank 0 is the last to finish: it writes the checkpoint and predicts the project): a
            # rank that left early would make the others' last collective fail.
            dist.barrier(group=_PATIENT[0] if _PATIENT else None)
            self._clean = True
            return status
        except KeyboardInterrupt:
            return 130
        except BaseException as exc:
            peer = self.peer_failure(wait_s=0 if isinstance(exc, PeerFailed) else 3.0)
            if peer is not None or isinstance(exc, PeerFailed):
                return 1  # a consequence of another rank's failure, which rank 0 has reported
            lost = isinstance(exc, dist.DistError)
            text = str(exc) if isinstance(exc, HarappError) else f"{type(exc).__name__}: {exc}"
            if lost:
                text = f"lost contact with another rank of the job ({text})"
            where = "" if self.ranks.is_leader else f"rank {self.ranks.rank}: "
            print(f"harapp: {where}error: {text}", file=sys.stderr, flush=True)
            if not isinstance(exc, HarappError) and not lost:
                traceback.print_exception(exc, file=sys.stderr)
            self.fail(text)
            return 1

    def _key(self, name: str) -> str:
        return f"{self._prefix}/{name}"

    def fail(self, message: str) -> None:
        """Tell the other ranks this one failed; rank 0 prints it. Waits a little for rank 0 to have shown it."""
        if self._store is None:
            return
        try:
            self._store.set(self._key(f"failed/{self.ranks.rank}"), message)
            self._store.add(self._key(_FAILURES), 1)
            if not self.ranks.is_leader:
                self._store.wait([self._key(_SEEN)], datetime.timedelta(seconds=5))
        except (RuntimeError, dist.DistError):
            pass  # the store is gone (torchrun is ending the job) or rank 0 is gone: nothing more to tell

    def peer_failure(self, wait_s: float = 3.0) -> Failure | None:
        """The failure of another rank, if one was reported (waiting up to wait_s for a report to arrive)."""
        if self._peer is None and self._store is not None and not self._stop.is_set():
            self._announced.wait(wait_s)
        if self._peer is None and self._store is not None:
            self._peer = self._find_failure()
        return self._peer

    def _find_failure(self) -> Failure | None:
        assert self._store is not None
        try:
            if not self._store.add(self._key(_FAILURES), 0):
                return None
            for rank in range(self.ranks.world):
                key = self._key(f"failed/{rank}")
                if rank != self.ranks.rank and self._store.check([key]):
                    return Failure(rank, self._store.get(key).decode(errors="replace"))
        except (RuntimeError, dist.DistError):
            return None
        return None

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            failure = self._find_failure()
            if failure is None:
                continue
            self._peer = failure
            if self.ranks.is_leader:
                print(
                    f"harapp: error: rank {failure.rank} of {self.ranks.world} failed: {failure.message}",
                    file=sys.stderr,
                    flush=True,
                )
                assert self._store is not None
                with contextlib.suppress(RuntimeError, dist.DistError):
                    self._store.set(self._key(_SEEN), "1")
            self._announced.set()
            if not self._stop.wait(self.grace_s):
                # The main thread is still blocked in a collective that cannot finish (NCCL waits for its
                # timeout): end this rank; the failure was reported above.
                os._exit(1)
            return
