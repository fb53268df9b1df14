"""Finding wrong labels: flip 10% of the coco-har caption labels at random and see which order finds them.

Run by hand (skips when ../shared/coco-har is absent):
    python bench/label_noise_bench.py [--seeds 5] [--project /tmp/coco.harapp] [--demo]

For each seed, 10% of the labelled photos get another class at random; every method ranks all labelled photos
by how likely their (now noisy) label is wrong. precision@k: the share of flipped photos among the first k,
k = number of flips; recall@2k: the share of flips found in the first 2k. Methods:
- random order;
- today's sort (harapp 0.1): whole-photo features, fixed-strength head fitted on all labels, in-sample margin;
- in-sample probability of the given label (same head);
- the plain out-of-fold baseline: one 5-fold round of the class-balanced probe, p(given label);
- harapp's review (harapp.ml.label_quality): person-aware features, out-of-fold probabilities over 5 folds
  averaged over three fold assignments, a second round without the worst-looking 10%, cleanlab's
  self-confidence score; --variants adds rows for each ingredient.
Then "corrections pay off": restoring the original label of the top 25/50/100 photos of the review order
versus 25/50/100 random ones, and the 5-fold accuracy (against the original labels) of a probe retrained on
each. --demo ranks the demo dataset's captions instead, some of which are wrong on purpose.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from ml_common import COCO_HAR, coco_project, machine_info, probe_features


def precision_recall(order: np.ndarray, flipped: np.ndarray) -> tuple[float, float]:
    k = int(flipped.sum())
    return float(flipped[order[:k]].mean()), float(flipped[order[: 2 * k]].sum() / k)


def in_sample_orders(feats, noisy, seed: int) -> dict[str, np.ndarray]:
    """harapp 0.1's head: standardised features, L2 1e-2, class-balanced, fitted on all labels."""
    import torch

    from harapp.ml.head import fit_probe
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    head = LinearHead(feats.shape[1], 4)
    fit_probe(head, feats, torch.tensor(noisy), Reporter(None, None), grid=(1e-2,), folds=0)
    with torch.no_grad():
        probs = head(feats).softmax(1).numpy()
    top2 = np.sort(probs, 1)[:, -2:]
    return {
        "in-sample margin (harapp 0.1's sort)": np.argsort(top2[:, 1] - top2[:, 0], kind="stable"),
        "in-sample p(given label)": np.argsort(probs[np.arange(len(noisy)), noisy], kind="stable"),
    }


def review_order(
    feats, noisy, method: str, seeds: tuple[int, ...], prune: float | None = None
) -> tuple[np.ndarray, float]:
    import torch

    from harapp.ml.label_quality import PRUNE_FRACTION, score_labelled
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    start = time.perf_counter()
    head = LinearHead(feats.shape[1], 4)
    _, _, scores = score_labelled(
        head, feats, torch.tensor(noisy), Reporter(None, None), method, seeds,  # type: ignore[arg-type]
        PRUNE_FRACTION if prune is None else prune,
    )  # fmt: skip
    return np.argsort(scores, kind="stable"), time.perf_counter() - start


def plain_oof_order(feats, noisy) -> np.ndarray:
    """The issue's baseline: one 5-fold round of the class-balanced probe, ranked by p(given label)."""
    import torch

    from harapp.ml.head import fit_probe
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    fit = fit_probe(LinearHead(feats.shape[1], 4), feats, torch.tensor(noisy), Reporter(None, None))
    probs = fit.oof_probabilities.numpy()
    return np.argsort(probs[np.arange(len(noisy)), noisy], kind="stable")


def cv_accuracy(feats, train_labels, truth, seed: int = 0) -> float:
    """5-fold accuracy against the original labels of a probe trained on train_labels."""
    import torch

    from harapp.ml.head import fit_probe, stratified_folds
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    folds = stratified_folds(torch.tensor(truth), 5, seed)
    correct = 0
    for f in range(5):
        train, test = folds != f, folds == f
        head = LinearHead(feats.shape[1], 4)
        fit_probe(head, feats[train], torch.tensor(train_labels)[train], Reporter(None, None), seed=seed)
        with torch.no_grad():
            pred = head(feats[test]).argmax(1).numpy()
        correct += int((pred == truth[test.numpy()]).sum())
    return correct / len(truth)


def demo_ranking(folder: Path) -> str:
    """The demo dataset's own wrong captions (drawn on purpose): does the review order find them?"""
    import json

    import torch

    from harapp.core.demo.project import create_demo_project
    from harapp.core.store import Project
    from harapp.ml.config import TrainConfig
    from harapp.ml.label_quality import FOLD_SEEDS, SCORE_METHOD, score_labelled
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    project_path = create_demo_project(folder)
    doc = json.loads((folder / "dataset" / "annotations" / "person_keypoints_demo.json").read_text())
    truth_by_name = {im["file_name"]: im["demo_truth"] for im in doc["images"]}
    with Project.open(project_path) as project:
        items = list(project.snapshot().items)
        names = project.class_names()
        records = {r.id: r for r in project.images()}
        feats, _ = probe_features(project, TrainConfig(), items)
    given = np.array([it.class_index for it in items])
    truth = np.array([names.index(truth_by_name[records[it.image_id].path.name]) for it in items])
    wrong = given != truth
    head = LinearHead(feats.shape[1], len(names))
    _, _, scores = score_labelled(head, feats, torch.tensor(given), Reporter(None, None), SCORE_METHOD, FOLD_SEEDS)
    order = np.argsort(scores, kind="stable")
    p, r = precision_recall(order, wrong)
    return (
        f"demo dataset: {len(items)} caption-labelled drawings, {int(wrong.sum())} captions wrong on purpose; "
        f"harapp review: precision@k {p:.3f}, recall@2k {r:.3f} (random would find {wrong.mean():.3f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", type=Path, default=COCO_HAR)
    parser.add_argument("--project", type=Path, default=Path("/tmp/harapp-bench/coco.harapp"))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fraction", type=float, default=0.10)
    parser.add_argument("--variants", action="store_true", help="also rank with other cleanlab methods / seeds")
    parser.add_argument("--no-payoff", dest="payoff", action="store_false")
    parser.add_argument("--demo", action="store_true", help="rank the demo dataset's wrong captions instead")
    args = parser.parse_args()
    if args.demo:
        import tempfile

        print(machine_info())
        with tempfile.TemporaryDirectory() as tmp:
            print(demo_ranking(Path(tmp) / "demo"))
        return 0
    if not (args.coco / "annotations").is_dir():
        print(f"SKIPPED: no COCO data at {args.coco}")
        return 0
    from harapp.ml.config import TrainConfig
    from harapp.ml.label_quality import FOLD_SEEDS, SCORE_METHOD

    print(machine_info())
    project = coco_project(args.project, args.coco)
    items = list(project.snapshot().items)
    truth = np.array([it.class_index for it in items])
    t = time.perf_counter()
    feats, _ = probe_features(project, TrainConfig(), items)
    old_feats, _ = probe_features(project, TrainConfig(views=("whole",), image_size=224), items)  # harapp 0.1
    print(f"{len(items)} caption-labelled photos; features ready in {time.perf_counter() - t:.1f} s "
          f"(cached in {args.project}); flips: {args.fraction:.0%}, seeds 0..{args.seeds - 1}\n")  # fmt: skip
    methods: dict[str, list[tuple[float, float]]] = {}
    payoff: dict[str, list[float]] = {}
    times: list[float] = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        n_flip = round(args.fraction * len(items))
        flip_at = rng.choice(len(items), n_flip, replace=False)
        noisy = truth.copy()
        noisy[flip_at] = (truth[flip_at] + rng.integers(1, 4, n_flip)) % 4
        flipped = noisy != truth
        orders = {"random": rng.permutation(len(items))}
        orders.update(in_sample_orders(old_feats, noisy, seed))
        order, took = review_order(feats, noisy, SCORE_METHOD, FOLD_SEEDS)
        times.append(took)
        name = f"harapp review: 2 rounds, out-of-fold x{len(FOLD_SEEDS)}, {SCORE_METHOD}, whole+person+pose"
        orders[name] = order
        orders["plain out-of-fold p(given label), whole photo, class-balanced"] = plain_oof_order(old_feats, noisy)
        if args.variants:
            orders["plain out-of-fold p(given label), whole+person+pose"] = plain_oof_order(feats, noisy)
            orders["harapp review, one round"] = review_order(feats, noisy, SCORE_METHOD, FOLD_SEEDS, 0.0)[0]
            orders["harapp review, normalized_margin"] = review_order(feats, noisy, "normalized_margin", FOLD_SEEDS)[0]
            orders["harapp review, whole photo only"] = review_order(old_feats, noisy, SCORE_METHOD, FOLD_SEEDS)[0]
        for method, o in orders.items():
            methods.setdefault(method, []).append(precision_recall(o, flipped))
        if args.payoff:
            payoff.setdefault("noisy", []).append(cv_accuracy(feats, noisy, truth, seed))
            for n in (25, 50, 100):
                for how, o in (("guided", order), ("random", orders["random"])):
                    fixed = noisy.copy()
                    fixed[o[:n]] = truth[o[:n]]
                    payoff.setdefault(f"{how} {n}", []).append(cv_accuracy(feats, fixed, truth, seed))
        print(f"seed {seed} done", flush=True)
    print("\n| order | precision@k mean ± std | recall@2k mean ± std |\n|---|---|---|")
    for method, values in methods.items():
        p = [v[0] for v in values]
        r = [v[1] for v in values]
        print(f"| {method} | {statistics.mean(p):.3f} ± {statistics.stdev(p):.3f} | "
              f"{statistics.mean(r):.3f} ± {statistics.stdev(r):.3f} |")  # fmt: skip
    print(f"\nscoring time (fits + cleanlab, features cached): median {statistics.median(times):.2f} s")
    if args.payoff:
        base = statistics.mean(payoff["noisy"])
        print(
            "\n| corrections | 5-fold accuracy (vs original labels) | gain | gain per correction |\n|---|---|---|---|"
        )
        print(f"| none (10% flipped) | {base:.3f} | | |")
        for n in (25, 50, 100):
            for how in ("guided", "random"):
                acc = statistics.mean(payoff[f"{how} {n}"])
                print(f"| {how} {n} | {acc:.3f} | {acc - base:+.3f} | {(acc - base) / n * 100:+.3f} per 100 |")
    project.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
