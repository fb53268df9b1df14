"""`harapp train` as one rank of a torchrun job: rank 0 reads the project, shows progress, writes the checkpoint,
registers the model, predicts the project's photos with it and scores the labels; every rank trains on its share
of each batch. The other ranks never open the project: they get the label snapshot (and each photo's person) from
rank 0 and read the photos (or the decoded-image cache) at the same paths."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harapp.cli.core_commands import open_project
from harapp.cli.ml_commands import (
    ProgressBar,
    after_training,
    prepare_training,
    print_training,
    sigint_sets,
    train_config,
)

if TYPE_CHECKING:
    from harapp.core.store import Project
    from harapp.core.types import LabelSnapshot
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
    from harapp.ml.distributed import leader_only
    from harapp.ml.trainer import train

    config = dataclasses.replace(train_config(args), device=str(job.device))
    world, leader = job.ranks.world, job.ranks.is_leader
    opened: list[Project] = []
    bar = ProgressBar() if leader else None

    def prepare() -> tuple[LabelSnapshot, Path]:
        project = open_project(args.project)
        opened.append(project)
        snapshot, out = prepare_training(project, args, config)
        per_rank = -(-config.batch_size // world)
        print(
            f"training {config.model_kind} ({config.mode}) on {len(snapshot.items)} labelled images, "
            f"{len(snapshot.class_names)} classes, {world} processes on {job.device.type} "
            f"(batch {per_rank * world}: {per_rank} per process)",
            file=sys.stderr,
        )
        return snapshot, out

    try:
        prepared = leader_only(prepare)
        assert prepared is not None
        snapshot, out = prepared
        project = opened[0] if opened else None
        store = None if project is None or project.readonly else project
        cancel = threading.Event()
        with sigint_sets(cancel, announce=leader):  # torchrun passes Ctrl+C on to every rank
            progress = _job_rate(bar, world) if bar is not None else None
            result = train(config, snapshot, out, progress=progress, cancel=cancel, project=store)
            # Rank 0 alone (it has the project) makes the model active and scores the labels; the others wait.
            review = leader_only(
                lambda: after_training(opened[0], config, result, bar or ProgressBar(), cancel), share=False
            )
    finally:
        if bar is not None:
            bar.close()
        for project in opened:
            project.close()
    if result.cancelled:
        if leader:
            kept = (
                f"the last good checkpoint is {result.checkpoint_path}" if result.checkpoint_path else "no checkpoint"
            )
            print(f"harapp: training cancelled on every rank; {kept}.", file=sys.stderr)
        return 130
    if leader:
        print_training(args.project, result, review)
    return 0
