"""The default pipeline's speed on the real photos: first training, a retrain after corrections, a dropped photo.

Run by hand (skips when ../shared/coco-har is absent):
    python bench/retrain_bench.py [--corrections 10] [--drops 12]

1. First training: a fresh import of the 598 coco-har photos, then `harapp train`'s work with no options
   (train(): people and poses, features of every view, the cross-validated head, calibration, held-out
   metrics, checkpoint; then every project image predicted, then label-quality scores). Goal: < 3 min.
2. A retrain after N label corrections, everything else cached: the same steps again. Goal: < 2 s.
3. A dropped photo (no annotations: the pose model finds the person): Predictor.predict on real photos,
   model already loaded, as the Predict panel runs it. Goal: bars in < 1 s.
Each phase's share comes from the progress reports the GUI and the CLI also get.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ml_common import COCO_HAR, coco_project, machine_info, percentile


class PhaseClock:
    """Seconds spent in each phase, from the progress callback."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._phase = ""
        self._since = time.perf_counter()

    def __call__(self, progress) -> None:  # noqa: ANN001 - TrainProgress
        self.switch(progress.phase)

    def switch(self, phase: str) -> None:
        now = time.perf_counter()
        if self._phase:
            self.seconds[self._phase] = self.seconds.get(self._phase, 0.0) + now - self._since
        self._phase, self._since = phase, now

    def report(self) -> str:
        self.switch("")
        return ", ".join(f"{name} {s:.2f} s" for name, s in self.seconds.items())


def run_once(project, out: Path) -> tuple[float, float, str, object]:  # noqa: ANN001
    from harapp.ml.config import TrainConfig
    from harapp.ml.label_quality import review_labels
    from harapp.ml.trainer import train

    clock = PhaseClock()
    start = time.perf_counter()
    result = train(TrainConfig(device="cpu"), project.snapshot(), out, progress=clock, project=project)
    trained = time.perf_counter() - start
    clock.switch("label review")
    review_labels(project, TrainConfig(device="cpu"), progress=clock)
    total = time.perf_counter() - start
    return trained, total, clock.report(), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", type=Path, default=COCO_HAR)
    parser.add_argument("--corrections", type=int, default=10)
    parser.add_argument("--drops", type=int, default=12)
    args = parser.parse_args()
    if not (args.coco / "annotations").is_dir():
        print(f"SKIPPED: no COCO data at {args.coco}")
        return 0
    import torch

    from harapp.ml.predictor import Predictor

    print(machine_info())
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        project = coco_project(Path(tmp) / "coco.harapp", args.coco)
        imported = time.perf_counter() - start
        trained, total, phases, result = run_once(project, Path(tmp) / "first.pt")
        print(f"\n1. first training, cold caches ({project.count_images()} photos, "
              f"{len(project.snapshot().items)} labelled): import {imported:.1f} s, train() {trained:.1f} s, "
              f"with label review {total:.1f} s (goal < 180 s)\n   {phases}")  # fmt: skip
        metrics = result.metrics
        print(f"   held-out accuracy {metrics.accuracy:.3f}, ECE {metrics.ece:.3f}; "
              f"{len(result.predictions.predictions)} project predictions stored")  # fmt: skip

        retrains = []
        for attempt in range(3):
            ids = [it.image_id for it in project.snapshot().items][attempt * args.corrections :]
            names = project.class_names()
            changes = [(i, names[(n + attempt) % len(names)]) for n, i in enumerate(ids[: args.corrections])]
            project.set_labels(changes, source="human")
            retrains.append(run_once(project, Path(tmp) / f"retrain{attempt}.pt"))
        best = min(retrains, key=lambda r: r[1])
        print(f"\n2. retrain after {args.corrections} corrections (3 runs): train() + predictions "
              f"{', '.join(f'{r[0]:.2f}' for r in retrains)} s; with label review "
              f"{', '.join(f'{r[1]:.2f}' for r in retrains)} s (goal < 2 s)\n   fastest: {best[2]}")  # fmt: skip

        predictor = Predictor.from_checkpoint(result.checkpoint_path, device="cpu")
        photos = [r.path for r in project.images()][: args.drops + 2]
        predictor.predict(photos[0])  # warm-up: the pose model's graph starts on first use
        predictor.predict(photos[1])
        times, found = [], 0
        for path in photos[2:]:
            start = time.perf_counter()
            pred = predictor.predict(path)
            times.append(time.perf_counter() - start)
            found += int(pred.person_source == "detector")
        print(f"\n3. dropped photo, no annotations ({len(times)} real photos, torch threads "
              f"{torch.get_num_threads()}): p50 {percentile(times, 0.5) * 1000:.0f} ms, "
              f"p95 {percentile(times, 0.95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (goal < 1000 ms); "
              f"a person found in {found} of {len(times)}; mean {statistics.mean(times) * 1000:.0f} ms")  # fmt: skip
        project.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
