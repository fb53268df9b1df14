"""`harapp train` as one rank of a torchrun job: rank 0 reads the project, shows progress, writes the checkpoint
and registers the model; every rank trains on its share of each batch. The other ranks never open the project:
they get the label snapshot from rank 0 and read the photos (or the decoded-image cache) at the same paths."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from harapp.cli.ml_commands import ProgressBar, sigint_sets, train_config
from harapp.core.paths import new_checkpoint_path

if TYPE_CHECKING:
    from harapp.ml.distributed import DistributedJob
    from harapp.ml.progress import TrainProgress

_SHARED_PHASES = ("embedding", "training", "evaluating")
"""Phases whose images are split over the ranks: rank 0's rate times the ranks is the job's rate."""


def cmd_train_ranks(args: argparse.Namespace) -> int:
    from harapp.ml.distributed import DistributedJob

    config = train_config(args)
    with DistributedJob(config.device) as job:
        return job.run(lambda: _train_rank(args, job))


def _job_rate(bar: ProgressBar, world: int) -> Callable[[TrainProgress], None]:
    def report(p: TrainProgress) -> None:
        if p.phase in _SHARED_PHASES:
            p = dataclasses.replace(p, images_per_second=p.images_per_second * world)
        bar(p)

    return report


def _train_rank(args: argparse.Namespace, job: DistributedJob) -> int:
    from harapp.core.store import Project
    from harapp.ml.distributed import from_leader
    from harapp.ml.metrics import format_metrics
    from harapp.ml.trainer import train

    config = dataclasses.replace(train_config(args), device=str(job.device))
    world, leader = job.ranks.world, job.ranks.is_leader
    project = Project.open(args.project) if leader else None
    bar = ProgressBar() if leader else None
    try:
        shared = None
        if project is not None:
            out = args.out or new_checkpoint_path(args.project, config.model_kind, config.mode)
            shared = (project.snapshot(), out)
        snapshot, out = from_leader(shared) or (None, None)
        assert snapshot is not None and out is not None
        if leader:
            per_rank = -(-config.batch_size // world)
            print(
                f"training {config.model_kind} ({config.mode}) on {len(snapshot.items)} labelled images, "
                f"{len(snapshot.class_names)} classes, {world} processes on {job.device.type} "
                f"(batch {per_rank * world}: {per_rank} per process)",
                file=sys.stderr,
            )
        cancel = threading.Event()
        with sigint_sets(cancel, announce=leader):  # torchrun passes Ctrl+C on to every rank
            progress = _job_rate(bar, world) if bar is not None else None
            result = train(config, snapshot, out, progress=progress, cancel=cancel, project=project)
    finally:
        if bar is not None:
            bar.close()
        if project is not None:
            project.close()
    if result.cancelled:
        if leader:
            kept = (
                f"the last good checkpoint is {result.checkpoint_path}" if result.checkpoint_path else "no checkpoint"
            )
            print(f"harapp: training cancelled on every rank; {kept}.", file=sys.stderr)
        return 130
    if leader:
        assert result.metrics is not None
        print(format_metrics(result.metrics))
        model = f" (model id {result.model_id})" if result.model_id else ""
        print(f"\ncheckpoint: {result.checkpoint_path}{model}")
    return 0
