"""`harapp train`, `harapp predict`, `harapp eval`: the ML jobs without a screen."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from harapp.cli.core_commands import open_project
from harapp.cli.progress import StageBars, stage_bars
from harapp.core.errors import HarappError, ImageFileError
from harapp.core.image_files import expand_image_paths
from harapp.core.missing_files import without_missing
from harapp.core.paths import new_checkpoint_path

if TYPE_CHECKING:
    from harapp.core.store import Project
    from harapp.core.types import LabelSnapshot
    from harapp.ml.config import TrainConfig
    from harapp.ml.label_quality import LabelReview
    from harapp.ml.progress import TrainProgress
    from harapp.ml.trainer import TrainResult

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps (default: settings.json's device, else auto)"
TRAIN_OPTIONS = (
    "epochs", "batch_size", "lr", "seed", "device", "image_size", "folds", "weights_path", "clip_model",
    "clip_pretrained", "finetune_last_blocks", "views", "augment", "pretrained", "decoded_cache",
)  # fmt: skip
"""TrainConfig fields that `harapp train` sets only when they are given."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harapp.ml.config import TrainConfig
    from harapp.ml.kinds import DEFAULT_KIND, KINDS, MODES

    fixed = TrainConfig()  # the defaults that do not depend on the kind

    # Every training option defaults to None, meaning "what the Train form would start with": settings.json's
    # preferences, else the model-kind registry's defaults for the kind and mode (see harapp.ml.defaults).
    p = subparsers.add_parser("train", help="train a classifier on a project's labels")
    p.add_argument("project", type=Path)
    p.add_argument(
        "--model",
        dest="model_kind",
        choices=tuple(KINDS),
        help=f"default: settings.json's default_model_kind, else {DEFAULT_KIND}",
    )
    p.add_argument(
        "--mode",
        choices=MODES,
        help="default: settings.json's default_mode where the model allows it, else the model's own",
    )
    p.add_argument("--epochs", type=int, help="default: per model kind and mode, as in the Train panel")
    p.add_argument("--batch-size", type=int, help="default: per model kind and mode")
    p.add_argument("--lr", type=float, help="default: per model kind and mode")
    p.add_argument("--seed", type=int, help=f"default: {fixed.seed}")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: settings.json's device, else auto)")
    p.add_argument(
        "--image-size", type=int, help="default: per model kind and mode (288 for the default probe, 224 to fine-tune)"
    )
    p.add_argument("--folds", type=int, help=f"k-fold cross-validation before the final fit (default: {fixed.folds})")
    p.add_argument("--weights", dest="weights_path", help="local pretrained weights file")
    p.add_argument("--clip-model", help=f"open_clip architecture (default: {fixed.clip_model})")
    p.add_argument("--clip-pretrained", help=f"open_clip pretrained tag (default: {fixed.clip_pretrained})")
    p.add_argument("--finetune-last-blocks", type=int)
    p.add_argument(
        "--prompt", dest="prompts", action="append", metavar="TEMPLATE",
        help="a CLIP class prompt with {} for the class name, e.g. 'a photo of a person {}.' (repeat for an "
        "ensemble; default: harapp's built-in ensemble)",
    )  # fmt: skip
    p.add_argument(
        "--views", type=_views, metavar="VIEWS",
        help="what the model sees of each photo: any of whole, person, pose joined by '+' "
        f"(default: {'+'.join(fixed.views)}; 'whole' alone is the model of harapp 0.1)",
    )  # fmt: skip
    p.add_argument("--no-augment", dest="augment", action="store_false", default=None)
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None, help="random init")
    p.add_argument(
        "--no-decoded-cache", dest="decoded_cache", action="store_false", default=None,
        help="decode every photo in every epoch instead of keeping decoded photos in <project>.cache/",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="checkpoint path (default: beside the project)")
    p.set_defaults(handler=cmd_train)

    p = subparsers.add_parser("predict", help="predict the activity in photos with a checkpoint")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMG_OR_DIR")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(handler=cmd_predict)

    p = subparsers.add_parser(
        "export-model", help="export a checkpoint (ONNX), checking the export against it on the project's photos"
    )
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--format", "-f", choices=("onnx",), default="onnx")
    p.add_argument("out", type=Path)
    p.add_argument("--project", type=Path, help="whose photos the parity check uses (default: the checkpoint's)")
    p.add_argument("--sample", type=int, default=32, help="photos in the parity check (default 32)")
    p.set_defaults(handler=cmd_export_model)

    p = subparsers.add_parser("eval", help="evaluate a checkpoint on a project's current labels")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("project", type=Path)
    p.add_argument("--on", choices=("test", "all"), default="test", help="the held-out images or all labelled")
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(handler=cmd_eval)


@contextmanager
def sigint_sets(event: threading.Event, announce: bool = True) -> Iterator[None]:
    """First Ctrl+C asks the job to stop at the next step; a second one interrupts at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        if announce:
            print("\nharapp: cancelling after the current step (Ctrl+C again to abort)...", file=sys.stderr)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressBar(StageBars):
    """Stage bars fed by the trainer's TrainProgress records: one bar per phase, counted in steps."""

    def __call__(self, p: TrainProgress) -> None:  # type: ignore[override]
        total = p.epochs * p.steps
        parts = [f"epoch {p.epoch}/{p.epochs}"]
        if p.images_per_second:
            parts.append(f"{p.images_per_second:.1f} img/s")
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        if p.val_accuracy is not None:
            parts.append(f"val acc {p.val_accuracy:.3f}")
        super().__call__(p.phase, min(total, (p.epoch - 1) * p.steps + p.step), total, ", ".join(parts))


def _views(text: str) -> tuple[str, ...]:
    from harapp.ml.errors import ConfigError
    from harapp.ml.views import parse_views

    try:
        return parse_views(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The job `harapp train` runs: the Train form's starting point, with the options given on top."""
    from harapp.ml.defaults import start_config

    given = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    if args.prompts:
        given["prompts"] = tuple(args.prompts)
    return start_config(args.model_kind, args.mode, **given).validate()


def _device(args: argparse.Namespace) -> str:
    from harapp.ml.defaults import preferred_device

    return str(args.device) if args.device else preferred_device()


def cmd_train(args: argparse.Namespace) -> int:
    from harapp.ml.distributed import launched_world

    if launched_world() > 1:  # one rank of a torchrun job
        from harapp.cli.train_ranks import cmd_train_ranks

        return cmd_train_ranks(args)
    from harapp.ml.device import describe_device
    from harapp.ml.trainer import train

    config = train_config(args)
    cancel = threading.Event()
    bar = ProgressBar()
    with open_project(args.project) as project:
        snapshot, out = prepare_training(project, args, config)
        print(
            f"training {config.model_kind} ({config.mode}) on {len(snapshot.items)} labelled images, "
            f"{len(snapshot.class_names)} classes, device {describe_device(config.device)}",
            file=sys.stderr,
        )
        try:
            with sigint_sets(cancel):
                # A read-only project can neither cache features nor register the model.
                store = None if project.readonly else project
                result = train(config, snapshot, out, progress=bar, cancel=cancel, project=store)
                review = after_training(project, config, result, bar, cancel)
        finally:
            bar.close()
    if result.cancelled:
        kept = f"the last good checkpoint is {result.checkpoint_path}" if result.checkpoint_path else "no checkpoint"
        print(f"harapp: training cancelled; {kept}.", file=sys.stderr)
        return 130
    print_training(args.project, result, review)
    return 0


def prepare_training(project: Project, args: argparse.Namespace, config: TrainConfig) -> tuple[LabelSnapshot, Path]:
    """The labels to train on and the checkpoint's path, after tidying up earlier runs; HarappError when the run
    could not save its model or has nothing to train on."""
    if project.readonly and args.out is None:
        raise HarappError(
            f"{args.project}: cannot train: {project.readonly_reason}, so the new model could not be saved "
            "beside it or registered; copy the project somewhere writable (or give --out FILE to only "
            "write a checkpoint)"
        )
    from harapp.ml.checkpoint import adopt_leftovers

    removed, adopted = adopt_leftovers(project)
    if removed or adopted:
        print(f"harapp: tidied up after earlier runs: {len(removed)} stale temporary files deleted, "
              f"{len(adopted)} unregistered checkpoints registered", file=sys.stderr)  # fmt: skip
    snapshot, missing = without_missing(project.snapshot())
    if missing.count and not snapshot.items:
        raise HarappError(f"Nothing to train on: {missing.describe(3)}.")
    if missing.count:
        print(f"harapp: {missing.describe(3)}; training without them", file=sys.stderr)
    return snapshot, args.out or new_checkpoint_path(args.project, config.model_kind, config.mode)


def after_training(
    project: Project, config: TrainConfig, result: TrainResult, bar: ProgressBar, cancel: threading.Event
) -> LabelReview | None:
    """As in the app, the new model becomes the active one; then the labels are scored when that is cheap."""
    if project.readonly or result.model_id is None:
        return None
    project.set_active_model(result.model_id)
    return _review_after_training(project, config, result, bar, cancel)


def print_training(project_path: Path, result: TrainResult, review: LabelReview | None) -> None:
    from harapp.ml.metrics import format_metrics

    assert result.metrics is not None
    print(format_metrics(result.metrics))
    print(
        f"\ncheckpoint: {result.checkpoint_path}"
        + (f" (model id {result.model_id}, now the active model)" if result.model_id else "")
    )
    if result.predictions is not None:
        unreadable = len(result.predictions.unreadable)
        print(
            f"predictions stored for {len(result.predictions.predictions)} images"
            + (f" ({unreadable} photos could not be read)" if unreadable else "")
        )
    if review is not None:
        wrong = sum(1 for r in review.rows if r.queue == "review" and r.likely_wrong)
        print(f"label review: {wrong} labels look wrong (`harapp review {project_path}` lists them)")


def _review_after_training(
    project: Project, config: TrainConfig, result: TrainResult, bar: ProgressBar, cancel: threading.Event
) -> LabelReview | None:
    """Label-quality scores with the new model's kind, when its features are cached and scoring is cheap."""
    from harapp.ml.errors import TrainingCancelled
    from harapp.ml.kinds import FROZEN_BACKBONE_MODES
    from harapp.ml.label_quality import review_labels

    if result.cancelled or cancel.is_set() or result.model_id is None or config.mode not in FROZEN_BACKBONE_MODES:
        return None
    try:
        return review_labels(project, config, progress=bar, cancel=cancel)
    except TrainingCancelled:  # Ctrl+C after the model was saved: keep the model, skip the scores
        print("harapp: label review cancelled; the model is saved.", file=sys.stderr)
        return None
    except HarappError as exc:
        print(f"harapp: no label review: {exc}", file=sys.stderr)
        return None


def cmd_predict(args: argparse.Namespace) -> int:
    from harapp.ml.predictor import Predictor

    predictor = Predictor.from_file(args.checkpoint, device=_device(args))
    files = expand_image_paths(args.inputs)
    if not files:
        raise HarappError("No image files found in " + ", ".join(str(p) for p in args.inputs))
    failures = 0
    names = predictor.class_names
    if not args.json:
        print(f"{'image':<40} {'predicted':<12} {'p':>6}  " + "  ".join(f"{n[:9]:>9}" for n in names))
    for start in range(0, len(files), 16):
        chunk = files[start : start + 16]
        try:
            preds = predictor.predict_batch(list(chunk))
        except ImageFileError:
            preds = []  # one unreadable file: go one by one so the others still get predicted
            for path in chunk:
                try:
                    preds += predictor.predict_batch([path])
                except ImageFileError as exc:
                    failures += 1
                    print(f"harapp: {exc}", file=sys.stderr)
        for pred in preds:
            if args.json:
                print(json.dumps(pred.to_dict()))
                continue
            shown = pred.source if len(pred.source) <= 40 else "..." + pred.source[-37:]
            probs = "  ".join(f"{v:9.3f}" for v in pred.probabilities)
            print(f"{shown:<40} {pred.top_class:<12} {pred.top_probability:6.3f}  {probs}")
    return 1 if failures else 0


def checkpoint_project(checkpoint: Path) -> Path | None:
    """The project a checkpoint belongs to: checkpoints live in '<project>.models/' beside the project."""
    folder = checkpoint.resolve().parent
    if folder.suffix != ".models":
        return None
    candidate = folder.parent / f"{folder.stem}.harapp"
    return candidate if candidate.is_file() else None


def cmd_export_model(args: argparse.Namespace) -> int:
    from harapp.core.store import Project
    from harapp.ml.checkpoint import load_checkpoint
    from harapp.ml.onnx_export import check_parity, export_onnx, sample_photos

    ckpt = load_checkpoint(args.checkpoint)
    out = export_onnx(ckpt, args.out)
    print(f"exported {ckpt.config.model_kind} ({ckpt.config.mode}) to {out} ({out.stat().st_size / 1e6:.1f} MB)")
    project_path = args.project or checkpoint_project(args.checkpoint)
    if project_path is None:
        print("harapp: no project found for the parity check; give --project P", file=sys.stderr)
        return 0
    with Project.open(project_path, readonly=True) as project:
        photos = [(it.path, it.person_boxes) for it in project.image_items()]
    chosen = sample_photos(photos, args.sample)
    if not chosen:
        print(f"harapp: {project_path} has no photos on disk for the parity check", file=sys.stderr)
        return 0
    parity = check_parity(ckpt, out, chosen, sample=f"{len(chosen)} photos of {project_path.name}")
    verdict = "OK" if parity.ok else "MISMATCH"
    print(
        f"parity on {parity.sample}: top-1 agreement {parity.agreement:.1%}, max |Δp| {parity.max_abs_diff:.2e} "
        f"({verdict}; goal 100% and <= 1e-4)"
    )
    return 0 if parity.ok else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from harapp.ml.checkpoint import check_classes
    from harapp.ml.metrics import compute_metrics, format_metrics
    from harapp.ml.predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, device=_device(args))
    ckpt = predictor.checkpoint
    assert ckpt is not None
    with open_project(args.project, readonly=True) as project:
        check_classes(ckpt, project.class_names())
        snapshot = project.snapshot()
    items = list(snapshot.items)
    if args.on == "test" and ckpt.metrics is not None and ckpt.metrics.test_image_ids:
        held_out = set(ckpt.metrics.test_image_ids)
        items = [it for it in items if it.image_id in held_out]
        what = f"{len(items)} held-out images (current labels)"
    else:
        what = f"all {len(items)} labelled images (includes training images: optimistic)"
    if not items:
        raise HarappError(f"No labelled images of project {args.project} to evaluate on.")
    start = time.perf_counter()
    preds: list[int] = []
    with stage_bars() as bars:
        for i in range(0, len(items), 32):
            chunk = items[i : i + 32]
            out = predictor.predict_batch([it.path for it in chunk], [it.person_boxes for it in chunk])
            preds += [ckpt.class_names.index(p.top_class) for p in out]
            bars("evaluating", len(preds), len(items))
    metrics = compute_metrics([it.class_index for it in items], preds, ckpt.class_names, [it.image_id for it in items])
    print(f"{ckpt.path.name}: {ckpt.config.model_kind} ({ckpt.config.mode}), trained on label revision "
          f"{ckpt.label_revision}; project is at revision {snapshot.revision}")  # fmt: skip
    print(f"evaluated on {what} in {time.perf_counter() - start:.1f} s\n")
    print(format_metrics(metrics))
    return 0
