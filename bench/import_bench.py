"""Import benchmark: a COCO-train-sized captions file (118k images, 590k captions, ~90 MB) and coco-har.

Run by hand: `python bench/import_bench.py [--images 118287] [--keep DIR]`. Each import runs in a fresh
subprocess so the peak memory (ru_maxrss) of one does not hide in another's. Targets for the big file:
under 15 s and under 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
from bench.machine import describe  # noqa: E402 - needs the repository on sys.path

COCO_HAR = Path(os.environ.get("HARAPP_COCO_HAR", REPO.parent / "shared" / "coco-har"))
TARGET_SECONDS, TARGET_MB = 15.0, 1500.0

_PEOPLE = [
    "a man",
    "a woman",
    "a young boy",
    "a little girl",
    "two men",
    "a group of people",
    "a tennis player",
    "a skier",
    "a surfer",
    "an older man",
    "three women",
    "a couple",
    "a family",
    "a baseball player",
    "a person",
    "some kids",
    "a guy",
    "a lady",
    "people",
    "a crowd of people",
    "a snowboarder",
    "a child",
]
_THINGS = [
    "a dog",
    "a cat",
    "a bus",
    "a train",
    "a laptop",
    "a plate of food",
    "a giraffe",
    "two zebras",
    "an elephant",
    "a red car",
    "a clock tower",
    "a pizza",
    "a horse",
    "a vase of flowers",
    "a fire hydrant",
]
_PLACES = [
    "on a bench",
    "next to a building",
    "in a kitchen",
    "on the beach",
    "in a field",
    "at a table",
    "down the street",
    "on a snowy hill",
    "near the water",
    "in front of a store",
    "on a tennis court",
    "with an umbrella",
    "in the park",
    "beside a fence",
    "on a couch",
    "at the bus stop",
]
_OTHER = [
    "A kitchen with a stove and a refrigerator.",
    "A hot dog stand on a busy corner.",
    "A player hits a home run in the stadium.",
    "A cozy sitting room with a fireplace.",
    "A plate of food on a wooden table.",
    "A walk signal next to a crosswalk.",
]


_ACTIVITY_VERBS = {
    "standing": ["is standing", "standing", "stands", "posing"],
    "sitting": ["is sitting", "sitting", "sits", "seated"],
    "walking": ["walking", "walks", "is walking", "strolling"],
    "running": ["running", "runs", "is running", "jogging"],
}
_ACTIVITIES = ["standing"] * 9 + ["sitting"] * 8 + ["walking"] * 3 + ["running"]


def _captions(rng: random.Random, count: int) -> list[str]:
    """Captions of one photo: most describe the same activity, as COCO's five annotators mostly agree."""
    activity = rng.choice(_ACTIVITIES)
    with_person = rng.random() < 0.8
    texts = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.12:
            texts.append(rng.choice(_OTHER))
            continue
        subject = rng.choice(_PEOPLE if with_person or roll < 0.2 else _THINGS)
        chosen = activity if roll < 0.85 else rng.choice(_ACTIVITIES)
        text = f"{subject} {rng.choice(_ACTIVITY_VERBS[chosen])} {rng.choice(_PLACES)}"
        if rng.random() < 0.3:
            text += f" {rng.choice(_PLACES)}"
        texts.append(text[0].upper() + text[1:] + ".")
    return texts


def make_big_captions(folder: Path, n_images: int, seed: int = 0) -> Path:
    """COCO captions_train2017.json's shape and size: ~5 captions per image, realistic image entries."""
    rng = random.Random(seed)
    images = []
    annotations = []
    caption_id = 1
    for index in range(n_images):
        image_id = 100000 + index * 3
        name = f"{image_id:012d}.jpg"
        images.append(
            {
                "license": rng.randint(1, 8),
                "file_name": name,
                "coco_url": f"http://images.cocodataset.org/train2017/{name}",
                "height": 480,
                "width": 640,
                "date_captured": "2013-11-14 11:18:45",
                "flickr_url": f"http://farm4.staticflickr.com/{rng.randint(1000, 9999)}/{image_id}_z.jpg",
                "id": image_id,
            }
        )
        for text in _captions(rng, 5 if rng.random() < 0.996 else 6):
            annotations.append({"image_id": image_id, "id": caption_id, "caption": text})
            caption_id += 1
    doc = {
        "info": {"description": "synthetic COCO-sized captions for harapp's import benchmark", "year": 2017},
        "licenses": [{"id": i, "name": f"licence {i}", "url": ""} for i in range(1, 9)],
        "images": images,
        "annotations": annotations,
    }
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    (folder / "train2017").mkdir(exist_ok=True)
    path = folder / "annotations" / "captions_train2017.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _child(root: str, project_path: str) -> None:
    """Runs in the subprocess: one import into a fresh project; prints its figures as JSON."""
    sys.path.insert(0, str(REPO))
    from harapp.core.importers.coco import import_coco
    from harapp.core.store import Project

    start = time.perf_counter()
    with Project.create(Path(project_path)) as project:
        report = import_coco(project, Path(root))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    figures = {
        "seconds": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "images": report.images,
        "labelled": report.labelled,
        "uncertain": report.uncertain,
        "missing": report.missing,
        "per_class": report.per_class,
    }
    print(json.dumps(figures))


def _measure(label: str, root: Path, workdir: Path) -> dict:
    project = workdir / f"{label}.harapp"
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(root), str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{label}: import failed\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{label:<34} {figures['seconds']:>7.2f} s {figures['peak_mb']:>8.1f} MB  images={figures['images']}"
        f" labelled={figures['labelled']} uncertain={figures['uncertain']} missing={figures['missing']}"
    )
    print(f"{'':<34} per class: {figures['per_class']}")
    return figures


def _helper(*args: object) -> None:
    subprocess.run([sys.executable, __file__, *map(str, args)], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=118287, help="images in the synthetic captions file")
    parser.add_argument("--keep", type=Path, help="build the synthetic dataset here and keep it")
    parser.add_argument("--child", nargs=2, metavar=("ROOT", "PROJECT"), help=argparse.SUPPRESS)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--touch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    if args.make:
        make_big_captions(args.make, args.images)
        return 0
    if args.touch:
        # Placeholder files: the importer takes sizes from the JSON, so empty files exercise the full write path.
        doc = json.loads((args.touch / "annotations" / "captions_train2017.json").read_text(encoding="utf-8"))
        for entry in doc["images"]:
            (args.touch / "train2017" / entry["file_name"]).touch()
        return 0
    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory(prefix="harapp-bench-") as tmp:
        workdir = Path(tmp)
        big = args.keep or workdir / "coco-big"
        start = time.perf_counter()
        # Building the data happens in subprocesses too: Linux carries a parent's peak RSS into its
        # children's ru_maxrss, so a big parent would inflate every measured peak.
        _helper("--make", big, "--images", args.images)
        path = big / "annotations" / "captions_train2017.json"
        size_mb = path.stat().st_size / 1e6
        print(
            f"synthetic captions: {args.images} images, {size_mb:.0f} MB, made in {time.perf_counter() - start:.1f} s"
        )
        results = {"empty images folder": _measure("big, empty images folder", big, workdir)}
        _helper("--touch", big)
        results["all images present"] = _measure("big, all images present", big, workdir)
        if (COCO_HAR / "annotations").is_dir():
            _measure("coco-har (598 real images)", COCO_HAR, workdir)
        else:
            print(f"coco-har not found at {COCO_HAR}; skipped")
    worst = max(results.values(), key=lambda r: r["seconds"])
    heaviest = max(r["peak_mb"] for r in results.values())
    ok = worst["seconds"] < TARGET_SECONDS and heaviest < TARGET_MB
    print(f"targets (< {TARGET_SECONDS:.0f} s, < {TARGET_MB:.0f} MB): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
