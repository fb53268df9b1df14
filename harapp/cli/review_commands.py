"""`harapp review` and `harapp next`: guided curation without a screen.

Both print stored scores when they are fresh (scored at the project's current label revision) and compute
them otherwise, with the active model's kind when there is one, harapp's default model when not.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from harapp.cli.progress import StageBars
from harapp.core.store import Project
from harapp.core.types import LabelQuality, ReviewQueue

if TYPE_CHECKING:
    from harapp.ml.progress import TrainProgress


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for queue, about in (
        ("review", "labelled images ranked by how likely their label is wrong"),
        ("next", "unlabelled images ranked by how much a label would help"),
    ):
        p = subparsers.add_parser(queue, help=about)
        p.add_argument("project", type=Path)
        p.add_argument("--top", type=int, default=40, help="how many to print (default 40; 0: all)")
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.add_argument("--rescore", action="store_true", help="score again even when the stored scores are fresh")
        p.set_defaults(handler=cmd_review, queue=queue)


class _Bars(StageBars):
    def __call__(self, p: TrainProgress) -> None:  # type: ignore[override]
        super().__call__(p.phase, min(p.epochs * p.steps, (p.epoch - 1) * p.steps + p.step), p.epochs * p.steps)


def fresh_scores(project: Project) -> list[LabelQuality] | None:
    """The stored scores when they were computed at the current label revision, else None."""
    rows = project.label_quality()
    if rows and all(r.label_revision == project.label_revision() for r in rows):
        return rows
    return None


def compute_scores(project: Project) -> list[LabelQuality]:
    """Score now (features come from the project's cache where it has them), with progress on stderr."""
    from harapp.ml.checkpoint import load_checkpoint
    from harapp.ml.errors import CheckpointError
    from harapp.ml.label_quality import review_labels

    active = project.active_model()
    config = None
    if active is not None:
        try:
            config = load_checkpoint(active.path).config
        except CheckpointError as exc:
            print(f"harapp: the active model cannot be read ({exc}); scoring with the default model", file=sys.stderr)
    bars = _Bars()
    try:
        review = review_labels(project, config, progress=bars, cancel=threading.Event())
    finally:
        bars.close()
    print(f"scored with {review.scorer} in {review.seconds:.1f} s", file=sys.stderr)
    if review.note:
        print(f"note: {review.note}", file=sys.stderr)
    return list(review.rows)


def cmd_review(args: argparse.Namespace) -> int:
    queue: ReviewQueue = args.queue
    with Project.open(args.project) as project:
        rows = None if args.rescore else fresh_scores(project)
        if rows is None:
            rows = compute_scores(project)
        chosen = sorted((r for r in rows if r.queue == queue), key=lambda r: (r.score, r.image_id))
        if args.top > 0:
            chosen = chosen[: args.top]
        records = {r.id: r for r in project.images(sorted({r.image_id for r in chosen}))}
        persons = {r.image_id: project.person_labels(r.image_id) for r in chosen if r.person_id is not None}
        lines = []
        for r in chosen:
            image = records[r.image_id]
            label = persons[r.image_id].get(r.person_id) if r.person_id is not None else image.label
            entry = {
                "file": image.rel_path,
                "image_id": r.image_id,
                "coco_id": image.coco_id,
                "person_id": r.person_id,
                "label": r.given_class if queue == "review" else None,
                "source": label.source if label is not None else None,
                "suggested": r.suggested_class,
                "score": round(r.score, 4),
                "likely_wrong": r.likely_wrong,
            }
            lines.append(entry)
    if args.json:
        for entry in lines:
            print(json.dumps(entry))
        return 0
    if not lines:
        print("nothing to show" + (": every image is labelled" if queue == "next" else ""))
        return 0
    if queue == "review":
        print(f"{'file':<28} {'image':>6} {'label':<10} {'source':<8} {'suggested':<10} {'score':>6}")
        for e in lines:
            mark = " !" if e["likely_wrong"] else ""
            print(
                f"{_short(str(e['file'])):<28} {e['image_id']:>6} {e['label'] or '':<10} {e['source'] or '':<8} "
                f"{e['suggested']:<10} {e['score']:>6.3f}{mark}"
            )
        print("\n! the model thinks another class fits better (low score: the label is probably wrong)")
    else:
        print(f"{'file':<28} {'image':>6} {'guess':<10} {'margin':>6}")
        for e in lines:
            print(f"{_short(str(e['file'])):<28} {e['image_id']:>6} {e['suggested']:<10} {e['score']:>6.3f}")
        print("\nmargin: how far the model's guess leads the next class (low: a label helps most)")
    return 0


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]
