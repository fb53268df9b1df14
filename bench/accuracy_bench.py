"""Accuracy and calibration on real photos (coco-har caption labels): harapp 0.1's default against today's.

Run by hand (skips when ../shared/coco-har is absent):
    python bench/accuracy_bench.py [--project /tmp/harapp-bench/coco.harapp] [--folds 5] [--seed 0]

Stratified k-fold cross-validation (seeded) over the photos the importer labels from their captions (no human
correction), on 4 classes and on 3 (walking and running merged, as the reference paper did). For every fold:
- harapp 0.1's default: EfficientNet-Lite0 features of the whole photo at 224 px, standardised, a class-balanced
  linear head with a fixed L2 strength (1e-2), no calibration;
- today's default: whole photo + the main person's square (both at 288 px) + body pose, the same head family with the
  strength chosen by inner 5-fold cross-validation and a temperature per predicted class fitted on the inner
  out-of-fold predictions (harapp.ml.head.fit_probe, exactly what `harapp train` runs);
- today's default with the person boxes the pose model finds instead of the annotations (the drop-a-photo
  path: no annotation is used at all).
Accuracy and macro-F1 are means ± std over the folds; per-class recall is pooled over all held-out
predictions, and so is ECE (15 bins), which needs more than one fold's ~90 predictions to mean anything.
Features come from the project's cache, so a rerun costs seconds.

Two figures say how much of a difference these few hundred photos can show: the ECE that perfectly calibrated
predictions with the same confidences would show on as many photos (simulated: each prediction right with
exactly its confidence), and, with --cv-seeds, the spread of the figures over other fold assignments.

Today's default is also calibrated the way it was before per-class temperatures (one temperature for every
prediction, fitted on the same inner out-of-fold predictions of the same heads), and both are shown side by
side: ECE, log-loss, and for each predicted class how sure those predictions were against how often right.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from ml_common import COCO_HAR, coco_project, machine_info, probe_features

MERGE_3 = {"walking/running": ("walking", "running"), "sitting": ("sitting",), "standing": ("standing",)}


def detector_recall(project, items, people) -> tuple[float, float, int]:  # noqa: ANN001
    """Share of photos whose main annotated person the detector found at IoU >= 0.5, share with any
    detection, and how many photos had an annotated person."""
    from harapp.ml.persons import main_person

    hits = found = total = 0
    for item, person in zip(items, people, strict=True):
        truth = main_person(item.person_boxes, item.width, item.height)
        if truth is None:
            continue
        total += 1
        if person.box is not None:
            found += 1
            hits += int(_iou(truth, person.box) >= 0.5)
    return hits / total, found / total, total


def _iou(a: tuple, b: tuple) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def evaluate(feats, targets: np.ndarray, n_classes: int, folds: int, seed: int, legacy: bool) -> dict:  # noqa: ANN001
    import torch

    from harapp.ml.calibration import expected_calibration_error, fit_temperature
    from harapp.ml.head import fit_probe, stratified_folds
    from harapp.ml.models import LinearHead, calibrated_probabilities
    from harapp.ml.progress import Reporter

    y = torch.tensor(targets)
    fold_of = stratified_folds(y, folds, seed)
    accs, f1s, probs_all, y_all, seconds, logits_all, temperatures, one_all = [], [], [], [], [], [], [], []
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        head = LinearHead(feats.shape[1], n_classes)
        start = time.perf_counter()
        if legacy:  # harapp 0.1: one fixed strength, no calibration
            fit = fit_probe(head, feats[train], y[train], Reporter(None, None), grid=(1e-2,), folds=0)
        else:
            fit = fit_probe(head, feats[train], y[train], Reporter(None, None), seed=seed)
        seconds.append(time.perf_counter() - start)
        held = ~fit.in_sample
        one = fit_temperature(fit.oof_logits[held], y[train][held]) if fit.folds else 1.0  # as before per-class
        with torch.no_grad():
            logits = head(feats[test])
            probs = calibrated_probabilities(logits, head.temperature).numpy()
        logits_all.append(logits)
        one_all.append((logits / one).softmax(1).numpy())
        temperatures.append(one)
        pred = probs.argmax(1)
        truth = targets[test.numpy()]
        accs.append(float((pred == truth).mean()))
        f1s.append(_macro_f1(truth, pred, n_classes))
        probs_all.append(probs)
        y_all.append(truth)
    probs, truth = np.concatenate(probs_all), np.concatenate(y_all)
    pred = probs.argmax(1)
    recall = [float((pred[truth == c] == c).mean()) if (truth == c).any() else float("nan") for c in range(n_classes)]
    one = np.concatenate(one_all)
    return {
        "acc": accs, "f1": f1s, "recall": recall, "ece": expected_calibration_error(probs, truth),
        "fit_s": statistics.median(seconds), "probs": probs, "truth": truth, "logits": torch.cat(logits_all),
        "temperature": statistics.mean(temperatures), "probs_one": one,
        "ece_one": expected_calibration_error(one, truth),
    }  # fmt: skip


def _spread_of(r: dict) -> tuple[float, ...]:
    """What --cv-seeds compares across fold assignments."""
    losses = (log_loss(r["probs"], r["truth"]), log_loss(r["probs_one"], r["truth"]))
    return (statistics.mean(r["acc"]), r["ece"], r["ece_one"], *losses)


def log_loss(probs: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, None)).mean())


def by_predicted_class(probs: np.ndarray, truth: np.ndarray, names: tuple[str, ...]) -> str:
    """For each class, its predictions: how many, how sure on average, how often right."""
    top, sure = probs.argmax(1), probs.max(1)
    parts = []
    for c, name in enumerate(names):
        mine = top == c
        if mine.any():
            parts.append(
                f"{name} {int(mine.sum())}: {sure[mine].mean():.2f} sure, {(truth[mine] == c).mean():.2f} right"
            )
    return "; ".join(parts)


def best_temperature_ece(logits, truth: np.ndarray) -> tuple[float, float]:  # noqa: ANN001
    """The temperature fitted on the held-out photos' own labels (least log-loss), and the ECE it gives: about the
    best one temperature can do on these predictions, a yardstick for the temperatures training fits elsewhere."""
    import torch

    from harapp.ml.calibration import expected_calibration_error, fit_temperature

    temperature = fit_temperature(logits, torch.tensor(truth))
    return temperature, expected_calibration_error((logits / temperature).softmax(1).numpy(), truth)


def _macro_f1(truth: np.ndarray, pred: np.ndarray, n: int) -> float:
    scores = []
    for c in range(n):
        if not (truth == c).any():
            continue
        tp = int(((pred == c) & (truth == c)).sum())
        precision = tp / max(1, int((pred == c).sum()))
        recall = tp / int((truth == c).sum())
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return float(np.mean(scores))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", type=Path, default=COCO_HAR)
    parser.add_argument("--project", type=Path, default=Path("/tmp/harapp-bench/coco.harapp"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", default="4,3")
    parser.add_argument("--no-detector", dest="detector", action="store_false", help="skip the detector rows")
    parser.add_argument(
        "--cv-seeds", default="", help="more fold assignments (e.g. 1,2) for today's default: the spread of its figures"
    )
    args = parser.parse_args()
    if not (args.coco / "annotations").is_dir():
        print(f"SKIPPED: no COCO data at {args.coco}")
        return 0
    import dataclasses

    from harapp.ml.calibration import ece_if_perfectly_calibrated, expected_calibration_error
    from harapp.ml.config import TrainConfig

    print(machine_info())
    project = coco_project(args.project, args.coco)
    snapshot = project.snapshot()
    items = list(snapshot.items)
    names = snapshot.class_names
    start = time.perf_counter()
    old_feats, _ = probe_features(project, TrainConfig(views=("whole",), image_size=224), items)  # harapp 0.1
    new_feats, _ = probe_features(project, TrainConfig(), items)
    rows = [("harapp 0.1 default: whole photo, fixed head", old_feats, True),
            ("today's default: whole + person + pose, annotated boxes", new_feats, False)]  # fmt: skip
    if args.detector:
        bare = [dataclasses.replace(it, person_boxes=()) for it in items]
        det_feats, det_people = probe_features(project, TrainConfig(), bare)
        recall, found, total = detector_recall(project, items, det_people)
        rows.append(("today's default: whole + person + pose, detector boxes", det_feats, False))
    print(
        f"features of {len(items)} photos ready in {time.perf_counter() - start:.0f} s (project cache: {args.project})"
    )
    counts = {n: sum(1 for it in items if it.class_index == i) for i, n in enumerate(names)}
    print(f"{len(items)} caption-labelled photos {counts}; {args.folds}-fold stratified CV, seed {args.seed}\n")
    if args.detector:
        print(f"detector (MediaPipe pose, up to 3 passes): a person found in {found:.1%} of the {total} photos with an "
              f"annotated person; the main annotated person found at IoU >= 0.5 in {recall:.1%}\n")  # fmt: skip
    print("| pipeline | classes | accuracy | macro-F1 | recall per class | ECE (15 bins, pooled) | head fit s |")
    print("|---|---|---|---|---|---|---|")
    four = np.array([it.class_index for it in items])
    three_names = tuple(MERGE_3)
    to_three = {names.index(old): three_names.index(new) for new, olds in MERGE_3.items() for old in olds}
    three = np.array([to_three[c] for c in four])
    floor: dict[str, tuple[float, float]] = {}
    best: dict[str, tuple[float, float, float]] = {}
    spread: dict[str, list[tuple[float, ...]]] = {}
    side_by_side: dict[str, tuple[dict, tuple[str, ...]]] = {}
    for label, feats, legacy in rows:
        for classes in args.classes.split(","):
            targets, shown = (four, names) if classes == "4" else (three, three_names)
            r = evaluate(feats, targets, len(shown), args.folds, args.seed, legacy)
            recall = ", ".join(f"{n[:7]} {v:.2f}" for n, v in zip(shown, r["recall"], strict=True))
            print(
                f"| {label} | {classes} | {statistics.mean(r['acc']):.3f} ± {statistics.stdev(r['acc']):.3f} | "
                f"{statistics.mean(r['f1']):.3f} ± {statistics.stdev(r['f1']):.3f} | {recall} | {r['ece']:.3f} | "
                f"{r['fit_s']:.2f} |",
                flush=True,
            )
            if not legacy and label == rows[1][0]:
                floor[classes] = ece_if_perfectly_calibrated(r["probs"], draws=2000)
                best[classes] = (r["temperature"], *best_temperature_ece(r["logits"], r["truth"]))
                spread[classes] = [_spread_of(r)]
                side_by_side[classes] = (r, shown)
    print()
    for classes, (r, shown) in side_by_side.items():
        for how, key in (
            ("a temperature per predicted class (today)", "probs"),
            ("one temperature (before)", "probs_one"),
        ):
            probs, ece = r[key], expected_calibration_error(r[key], r["truth"])
            print(f"{classes} classes, annotated boxes, {how}: ECE {ece:.3f}, "
                  f"log-loss {log_loss(probs, r['truth']):.3f}; by predicted class: "
                  f"{by_predicted_class(probs, r['truth'], shown)}")  # fmt: skip
    print()
    for classes, (mean, p90) in floor.items():
        print(f"{classes} classes: perfectly calibrated predictions with the same confidences show ECE {mean:.3f} "
              f"on average on {len(items)} photos (90th percentile {p90:.3f})")  # fmt: skip
    for classes, (fitted, oracle, ece) in best.items():
        print(f"{classes} classes: one temperature fitted on inner out-of-fold predictions averages "
              f"{fitted:.2f}; the one temperature that fits the held-out photos' own labels best is {oracle:.2f} and "
              f"gives ECE {ece:.3f}")  # fmt: skip
    for seed in [int(s) for s in args.cv_seeds.split(",") if s.strip()]:
        for classes in args.classes.split(","):
            targets, shown = (four, names) if classes == "4" else (three, three_names)
            r = evaluate(new_feats, targets, len(shown), args.folds, seed, False)
            spread[classes].append(_spread_of(r))
            print(f"today's default, annotated boxes, {classes} classes, CV seed {seed}: accuracy "
                  f"{statistics.mean(r['acc']):.3f}, ECE {r['ece']:.3f} (one temperature: {r['ece_one']:.3f})",
                  flush=True)  # fmt: skip
    if args.cv_seeds:
        for classes, values in spread.items():
            accs, eces, ones, losses, loss_ones = ([v[i] for v in values] for i in range(5))
            lower = sum(a < b for a, b in zip(losses, loss_ones, strict=True))
            print(f"{classes} classes over {len(values)} CV seeds: accuracy {statistics.mean(accs):.3f} "
                  f"(range {min(accs):.3f}-{max(accs):.3f}), ECE {statistics.mean(eces):.3f} "
                  f"(range {min(eces):.3f}-{max(eces):.3f}; sd {statistics.stdev(eces):.3f}); with one temperature "
                  f"{statistics.mean(ones):.3f} (range {min(ones):.3f}-{max(ones):.3f}); log-loss "
                  f"{statistics.mean(losses):.4f} against {statistics.mean(loss_ones):.4f} with one temperature, "
                  f"lower in {lower} of {len(values)} seeds")  # fmt: skip
    project.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
