"""100k-image projects: import, open, gallery, filters and sorts, stats, label snapshot, features, peak memory.

    PYTHONPATH=. HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen .venv/bin/python bench/scale_bench.py \
        [--images 100000] [--distinct 200] [--dim 2626] [--keep DIR]
        [--phases make,import,extras,store,gui,review,caches,app-review]

What it builds (in DIR, or a temporary folder): ``--distinct`` generated 640x480 JPEGs, and a COCO root whose
train2017 folder names every image by its own file (hard links to those photos, so every row has its own path
and thumbnail cache key, as in COCO train2017), with captions (five per image, as bench/import_bench.py makes
them) and person_keypoints (one to three persons per image). It imports that root with the real importer, then
adds what a project that was used for a while holds: one cached feature vector of ``--dim`` float32 per image
(2,626: whole photo + person crop + pose features), and an active model with a prediction for every image.

Every phase runs in its own process, so each peak RSS (ru_maxrss) is that phase's alone:
- import: ``import_coco`` into a fresh project.
- store: what the CLI does: ``Project.open`` (with and without the health check), ``stats``, ``snapshot``.
- gui: what the app does on the GUI thread with the real Workspace (GalleryModel, GalleryProxy, GalleryView,
  offscreen): open the project and show it, first page of thumbnails (cold cache), scroll page by page,
  every filter of the filter panel and every sort, then stats and snapshot in the same process.
- review: review-score computation on cached features, as `harapp review` runs it once features are cached:
  read every labelled image's vector from the store (as float16 where `harapp review` would hold them so:
  harapp.ml.label_quality.feature_dtype; --dtype overrides), then harapp.ml.label_quality.score_labelled.
- caches: fills the default model's own vector caches in the project (a kept one too) from the bench vectors:
  the whole and person vectors of every image and labelled person, each person's box and a found pose, so that
  the next phase finds them all.
- app-review: the whole of `harapp review` in one fresh process: harapp.ml.label_quality.review_labels with
  the default scoring model (snapshots, people, cached vectors, the fit, the queue of unlabelled images, the
  rows stored), its peak RSS and that of each step.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench.machine import describe  # noqa: E402 - needs the repository on sys.path

PHASES = ("make", "import", "extras", "store", "gui", "review", "caches", "app-review")
CLASSES = ("walking", "running", "sitting", "standing")
FEATURE_KEY = "bench-views:2626"
GOALS = {  # figure -> (limit, unit)
    "open_ms": (2000.0, "ms"),
    "first_page_ms": (1000.0, "ms"),
    "scroll_p95_ms": (16.0, "ms"),
    "stats_ms": (500.0, "ms"),
    "peak_mb": (1500.0, "MB"),
}


# -- helpers shared by the phases ---------------------------------------------------------------------------


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def timed(work: Callable[[], object], repeat: int = 1) -> list[float]:
    """Milliseconds of each of `repeat` runs."""
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": round(statistics.median(ordered), 2), "p95": round(p95, 2), "max": round(ordered[-1], 2)}


def emit(figures: dict[str, Any]) -> None:
    """The last stdout line of a phase: its figures, as JSON, for the parent process."""
    figures["peak_mb"] = round(peak_mb(), 1)
    print(json.dumps(figures))


# -- make: photos and a COCO root ------------------------------------------------------------------------------


def phase_make(work: Path, n_images: int, distinct: int) -> None:
    from PIL import Image, ImageDraw

    from bench.import_bench import _captions

    start = time.perf_counter()
    rng = random.Random(0)
    originals = work / "originals"
    root = work / "coco"
    images_dir = root / "train2017"
    for folder in (originals, root / "annotations", images_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(distinct):
        img = Image.new("RGB", (640, 480), ((i * 37) % 255, (i * 91) % 255, (i * 53) % 255))
        draw = ImageDraw.Draw(img)
        draw.ellipse((100 + i % 200, 80, 300 + i % 200, 400), fill=(240, 220, 190))
        draw.rectangle((20, 300 + i % 100, 600, 320 + i % 100), fill=(30, 30, 30))
        img.save(originals / f"o{i:04d}.jpg", quality=85)
    images, captions, persons = [], [], []
    caption_id = person_id = 1
    for index in range(n_images):
        image_id = 100000 + index
        name = f"{image_id:012d}.jpg"
        target = images_dir / name
        if not target.exists():
            try:
                os.link(originals / f"o{index % distinct:04d}.jpg", target)
            except OSError:  # no hard links here: a symbolic link still gives each row its own path
                target.symlink_to(originals / f"o{index % distinct:04d}.jpg")
        images.append({"id": image_id, "file_name": name, "width": 640, "height": 480, "license": 1})
        for text in _captions(rng, 5):
            captions.append({"id": caption_id, "image_id": image_id, "caption": text})
            caption_id += 1
        for k in range(1 + index % 3):
            x, y, w, h = 40.0 + 150 * k, 60.0, 120.0, 380.0
            keypoints = [v for j in range(17) for v in (round(x + 7 * j % w, 1), round(y + 20 * j, 1), 2)]
            persons.append(
                {
                    "id": person_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "keypoints": keypoints,
                    "num_keypoints": 17,
                }
            )
            person_id += 1
    base = {"info": {"description": "harapp scale_bench"}, "licenses": [{"id": 1, "name": "generated"}]}
    (root / "annotations" / "captions_train2017.json").write_text(
        json.dumps({**base, "images": images, "annotations": captions})
    )
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    (root / "annotations" / "person_keypoints_train2017.json").write_text(
        json.dumps({**base, "images": images, "annotations": persons, "categories": categories})
    )
    emit({"seconds": round(time.perf_counter() - start, 1), "persons": len(persons)})


# -- import ----------------------------------------------------------------------------------------------------


def phase_import(work: Path) -> None:
    from harapp.core.importers.coco import import_coco
    from harapp.core.store import Project

    path = work / "big.harapp"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    start = time.perf_counter()
    with Project.create(path) as project:
        report = import_coco(project, work / "coco")
    seconds = time.perf_counter() - start
    emit(
        {
            "seconds": round(seconds, 1),
            "images": report.images,
            "labelled": report.labelled,
            "persons": report.persons,
            "size_mb": round(path.stat().st_size / 1e6),
        }
    )


# -- extras: cached features and an active model with predictions ---------------------------------------------


def phase_extras(work: Path, dim: int) -> None:
    import numpy as np

    from harapp.core.store import Project
    from harapp.core.types import StoredPrediction

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    # Class means about as far apart as the noise is wide: a fit that is neither trivial nor hopeless.
    means = rng.normal(0.0, 0.015, size=(len(CLASSES), dim)).astype(np.float32)
    with Project.open(work / "big.harapp") as project:
        ids = project.image_ids()
        labels = {item.image_id: item.class_index for item in project.snapshot().items}
        for first in range(0, len(ids), 2000):
            chunk = ids[first : first + 2000]
            classes = np.array([labels.get(i, int(rng.integers(len(CLASSES)))) for i in chunk])
            vectors = means[classes] + rng.normal(0.0, 1.0, size=(len(chunk), dim)).astype(np.float32)
            project.put_embeddings(FEATURE_KEY, {i: v.tobytes() for i, v in zip(chunk, vectors, strict=True)})
        features_s = time.perf_counter() - start
        with project.transaction():  # a person label on every tenth image: person-level snapshots have work
            for image_id in ids[::10]:
                person = project.persons(image_id)[0].id
                project.set_label(image_id, CLASSES[image_id % 4], "human", person_id=person, reason="bench")
        names = project.class_names()
        model = project.register_model(
            "bench head",
            "efficientnet-lite0",
            "linear-probe",
            work / "bench.pt",
            project.label_revision(),
            {"class_names": names},
            {},
        )
        probs = rng.dirichlet(np.ones(len(names)), size=len(ids))
        predictions = {}
        for image_id, row in zip(ids, probs, strict=True):
            top = int(row.argmax())
            predictions[image_id] = StoredPrediction(
                names[top], float(row[top]), {n: round(float(p), 4) for n, p in zip(names, row, strict=True)}
            )
        project.put_predictions(model, predictions)
        project.set_active_model(model)
    emit(
        {
            "features_s": round(features_s, 1),
            "seconds": round(time.perf_counter() - start, 1),
            "size_mb": round((work / "big.harapp").stat().st_size / 1e6),
        }
    )


# -- store: what the CLI pays ----------------------------------------------------------------------------------


def store_figures(project_path: Path, repeat: int) -> dict[str, Any]:
    from harapp.core.store import Project
    from harapp.core.store import health as store_health

    def open_checked() -> None:
        store_health.forget(project_path)
        Project.open(project_path).close()

    out: dict[str, Any] = {}
    out["open_checked_ms"] = summary(timed(open_checked, repeat))
    out["open_trusted_ms"] = summary(timed(lambda: Project.open(project_path).close(), repeat))
    with Project.open(project_path) as project:
        out["stats_ms"] = summary(timed(lambda: project.stats(check_files=False), repeat))
        out["stats_files_ms"] = summary(timed(project.stats, repeat))
        before = rss_mb()
        snapshots: list[Any] = []
        out["snapshot_ms"] = summary(timed(lambda: snapshots.append(project.snapshot()), repeat))
        out["snapshot_items"] = len(snapshots[-1].items)
        out["snapshot_rss_mb"] = round(rss_mb() - before, 1)
        snapshots.clear()
        out["snapshot_persons_ms"] = summary(timed(lambda: project.snapshot(person_level=True), repeat))
    return out


def phase_store(work: Path, repeat: int) -> None:
    emit(store_figures(work / "big.harapp", repeat))


# -- gui: the real widgets, offscreen --------------------------------------------------------------------------


def phase_gui(work: Path, pages: int, repeat: int) -> None:
    os.environ["HARAPP_CACHE_DIR"] = str(work / "cache")
    os.environ["HARAPP_CONFIG_DIR"] = str(work / "config")
    shutil.rmtree(work / "cache" / "thumbs", ignore_errors=True)  # the first page must decode: a cold cache
    from PySide6.QtWidgets import QApplication

    from bench.gallery_bench import visible_ids, wait_page
    from harapp.core.store import Project
    from harapp.core.store import health as store_health
    from harapp.gui.gallery_model import UNLABELLED
    from harapp.gui.workspace import Workspace

    app = QApplication.instance() or QApplication([])
    area = Workspace()
    area.resize(1400, 900)
    area.show()
    app.processEvents()
    out: dict[str, Any] = {"rss_before_mb": round(rss_mb(), 1)}

    project_path = work / "big.harapp"
    for checked in (True, False):  # as after a crash or a copy (the health check runs), then as usual
        if checked:
            store_health.forget(project_path)
        start = time.perf_counter()
        project = Project.open(project_path)
        opened = time.perf_counter()
        area.set_project(project)
        shown = time.perf_counter()
        area.gallery.viewport().repaint()
        app.processEvents()
        painted = time.perf_counter()
        name = "checked" if checked else "trusted"
        out[f"open_{name}"] = {
            "project_open_ms": round((opened - start) * 1000, 1),
            "show_gallery_ms": round((shown - opened) * 1000, 1),
            "first_paint_ms": round((painted - start) * 1000, 1),  # open: the file, then the gallery painted
            # The gallery's first page: from showing the project to every thumbnail on screen (cold cache).
            "first_page_ms": round((painted - opened + wait_page(app, area.gallery)) * 1000, 1),
        }
        if checked:  # the next open is the usual one: the gallery of another project was shown in between
            area.set_project(None)
            project.close()
            shutil.rmtree(work / "cache" / "thumbs", ignore_errors=True)
    out["open_ms"] = out["open_trusted"]["first_paint_ms"]
    out["first_page_ms"] = out["open_trusted"]["first_page_ms"]
    out["page_size"] = len(visible_ids(area.gallery))
    out["rows"] = area.model.rowCount()
    out["rss_shown_mb"] = round(rss_mb(), 1)

    for cache in ("cold", "memory", "disk"):
        if cache == "disk":
            area.thumbnails.clear()  # from memory; the disk cache stays
        walls, cpus, ready = scroll(app, area.gallery, pages)
        out[f"scroll_{cache}_ms"] = summary(walls)
        out[f"scroll_{cache}_cpu_ms"] = summary(cpus)
        out[f"scroll_{cache}_ready_ms"] = summary(ready)
    out["scroll_p95_ms"] = max(out[f"scroll_{c}_ms"]["p95"] for c in ("cold", "memory", "disk"))
    bar = area.gallery.verticalScrollBar()
    jumps = []
    for fraction in (0.5, 0.9, 0.25, 0.75, 1.0):  # the scroll bar dragged far down
        started = time.perf_counter()
        bar.setValue(int(bar.maximum() * fraction))
        area.gallery.viewport().repaint()
        app.processEvents()
        jumps.append((time.perf_counter() - started) * 1000)
    out["jump_ms"] = summary(jumps)

    proxy = area.proxy
    filters: dict[str, dict[str, Any]] = {
        "class": {"class_name": "sitting"},
        "unlabelled": {"class_name": UNLABELLED},
        "source": {"source": "caption"},
        "uncertain": {"uncertain_only": True},
        "disagrees": {"disagrees_only": True},
        "text, one word": {"text": "bench"},
        "text, two words": {"text": "woman park"},
        "class + text": {"class_name": "standing", "text": "man"},
    }
    out["filters"] = {}
    for name, change in filters.items():
        applied, cleared, shown_rows = [], [], 0
        reset = {key: None if key in ("class_name", "source") else ("" if key == "text" else False) for key in change}
        for _ in range(repeat):
            applied += timed(lambda c=change: proxy.update_filter(**c))  # type: ignore[misc]
            area.gallery.viewport().repaint()
            shown_rows = proxy.rowCount()
            cleared += timed(lambda r=reset: proxy.update_filter(**r))  # type: ignore[misc]
        out["filters"][name] = {
            "first": round(applied[0], 1),
            "apply": summary(applied),
            "clear": summary(cleared),
            "rows": shown_rows,
        }
    out["sorts"] = {}
    sort_times: dict[str, list[float]] = {"confidence": [], "uncertainty": [], "id": []}
    for _ in range(repeat):
        for key, times in sort_times.items():  # each call changes the order
            times += timed(lambda k=key: proxy.set_sort_key(k))  # type: ignore[misc]
    for key, times in sort_times.items():
        out["sorts"][key] = {"first": round(times[0], 1), **summary(times)}
    proxy.update_filter(class_name="sitting")
    out["sort_filtered_ms"] = summary(
        [t for _ in range(repeat) for k in ("confidence", "id") for t in timed(lambda k=k: proxy.set_sort_key(k))]
    )
    # A label edit under that filter, as the 1-4 keys do: store write, model refresh, proxy re-check; the
    # image leaves the filter and the next one becomes current.
    edits = []
    for _ in range(repeat):
        area.gallery.select_row(3)
        edits += timed(lambda: area.labeling.label_current("walking", advance=True))
        app.processEvents()
    out["label_edit_hides_ms"] = summary(edits)
    proxy.update_filter(class_name=None)
    area.select_image(area.model.image_ids()[5])
    edits = []
    for name in ("walking", "sitting") * repeat:
        edits += timed(lambda n=name: area.labeling.label_current(n, advance=False))  # type: ignore[misc]
    out["label_edit_ms"] = summary(edits)
    while area.labeling.undo_stack.canUndo():  # leave the labels as they were, for the next run
        area.labeling.undo_stack.undo()
    out["rss_after_gallery_mb"] = round(rss_mb(), 1)
    out["stats_in_app_ms"] = summary(timed(lambda: project.stats(check_files=False), repeat))
    out["snapshot_in_app_ms"] = round(timed(project.snapshot)[0], 1)
    out["rss_end_mb"] = round(rss_mb(), 1)
    area.shutdown()
    area.set_project(None)
    project.close()
    emit(out)


def scroll(app: Any, view: Any, pages: int) -> tuple[list[float], list[float], list[float]]:
    """Scroll page by page from the top: per page, the wall time and the GUI thread's CPU time of scrolling and
    painting it (what decides smoothness; the CPU time is what other jobs on a shared machine cannot inflate),
    then how long until its thumbnails were all there. Milliseconds."""
    from bench.gallery_bench import wait_page

    bar = view.verticalScrollBar()
    bar.setValue(0)
    app.processEvents()
    walls, cpus, ready = [], [], []
    for _ in range(pages):
        wall, cpu = time.perf_counter(), time.thread_time()
        bar.setValue(bar.value() + bar.pageStep())
        view.viewport().repaint()  # paint now: the cost a person feels while scrolling
        app.processEvents()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.thread_time() - cpu) * 1000)
        ready.append(wait_page(app, view) * 1000)
        if bar.value() >= bar.maximum():
            break
    return walls, cpus, ready


# -- review: cached features and a 5-fold linear fit ---------------------------------------------------------


def phase_review(work: Path, dtype: str, dim: int) -> None:
    import numpy as np
    import torch

    from harapp.core.store import Project
    from harapp.ml.label_quality import FOLD_SEEDS, feature_dtype, score_labelled
    from harapp.ml.models import LinearHead
    from harapp.ml.progress import Reporter

    torch.manual_seed(0)
    out: dict[str, Any] = {"rss_start_mb": round(rss_mb(), 1)}
    with Project.open(work / "big.harapp") as project:
        snapshot = project.snapshot()
        ids = [item.image_id for item in snapshot.items]
        if dtype == "auto":
            dtype = "float16" if feature_dtype(len(ids), dim) == torch.float16 else "float32"
        out["dtype"] = dtype
        y = torch.tensor([item.class_index for item in snapshot.items])
        start = time.perf_counter()
        x = read_features(project, ids, np.float16 if dtype == "float16" else np.float32)
        out["read_s"] = round(time.perf_counter() - start, 2)
    out["vectors"], out["dim"] = x.shape
    out["matrix_mb"] = round(x.nbytes / 1e6)
    out["rss_after_read_mb"] = round(rss_mb(), 1)
    out["peak_after_read_mb"] = round(peak_mb(), 1)
    features = torch.from_numpy(x)  # float16 as it is: the fit converts a block at a time
    head = LinearHead(features.shape[1], len(snapshot.class_names))
    start = time.perf_counter()
    # What `harapp review` runs on cached features: out-of-fold probabilities over the fold seeds, a second
    # round without the worst-looking labels, and cleanlab's scores.
    fit, _, scores = score_labelled(head, features, y, Reporter(None, None))
    out["fit_s"] = round(time.perf_counter() - start, 1)
    out["fold_seeds"] = len(FOLD_SEEDS)
    out["folds"] = fit.folds
    out["flagged"] = int((scores < 0.5).sum())
    emit(out)


# -- caches and app-review: `harapp review` as a whole ---------------------------------------------------------


def _scoring_model(project: Any) -> tuple[Any, Any]:
    """The config and (backbone-less) model `harapp review` scores with by default."""
    from harapp.ml.config import TrainConfig
    from harapp.ml.label_quality import scoring_config
    from harapp.ml.models import build_model

    config = scoring_config(TrainConfig(device="cpu")).validate()
    return config, build_model(config, project.class_names(), backbone=False)


def phase_caches(work: Path) -> None:
    import numpy as np

    from harapp.core.store import Project
    from harapp.ml.embeddings import model_key
    from harapp.ml.people import POSE_KEY, resolve_people
    from harapp.ml.pose import LANDMARKS
    from harapp.ml.progress import Reporter
    from harapp.ml.vector_cache import BoxRows

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    with Project.open(work / "big.harapp") as project:
        config, built = _scoring_model(project)
        keys = {view: model_key(config, built, view) for view in ("whole", "person")}
        dim = built.model.backbone_dim
        images = project.snapshot().items
        labelled = {it.image_id for it in images}
        items = [
            *images,
            *project.snapshot(person_level=True).items,
            *project.image_items([i for i in project.image_ids() if i not in labelled]),
        ]
        # The boxes review_labels will look for: its people step without the pose (which would decode photos).
        people = resolve_people(items, ("whole", "person"), None, Reporter(None, None), detect=False)
        boxes: dict[int, set[Any]] = {}
        for item, person in zip(items, people, strict=True):
            boxes.setdefault(item.image_id, set()).update([person.box] if person.box is not None else [])
        ids = sorted({it.image_id for it in items})
        del items, people
        for first in range(0, len(ids), 5000):
            chunk = ids[first : first + 5000]
            bench = project.embedding_matrix(FEATURE_KEY, chunk)[0]
            whole, person_rows, poses = {}, {}, {}
            for k, image_id in enumerate(chunk):
                whole[image_id] = bench[k, :dim].tobytes()
                rows, pose_rows = BoxRows(dim), BoxRows(1 + LANDMARKS * 4)
                for j, box in enumerate(sorted(boxes.get(image_id, ()))):
                    rows.add(box, bench[k, dim : 2 * dim] + j)
                    landmarks = rng.uniform(0.0, 1.0, size=(LANDMARKS, 4)).astype(np.float32)
                    pose_rows.add(box, np.concatenate([[1.0], landmarks.ravel()]).astype(np.float32))  # found
                person_rows[image_id], poses[image_id] = rows.encode(), pose_rows.encode()
            project.put_embeddings(keys["whole"], whole)
            project.put_embeddings(keys["person"], person_rows)
            project.put_embeddings(POSE_KEY, poses)
    boxed = sum(len(b) for b in boxes.values())
    emit({"images": len(ids), "boxes": boxed, "seconds": round(time.perf_counter() - start, 1)})


def phase_app_review(work: Path) -> None:
    import threading

    from harapp.core.store import Project
    from harapp.ml import label_quality
    from harapp.ml.embeddings import model_key
    from harapp.ml.label_quality import review_labels

    out: dict[str, Any] = {"rss_imports_mb": round(rss_mb(), 1)}
    step = ["review"]
    step_peaks: dict[str, float] = {}

    def watch() -> None:  # the peak of each step, sampled: ru_maxrss has the process's peak only
        while True:
            step_peaks[step[0]] = max(step_peaks.get(step[0], 0.0), rss_mb())
            time.sleep(0.01)

    threading.Thread(target=watch, daemon=True).start()
    for name in ("resolve_people", "cached_features", "score_labelled"):
        wrapped = getattr(label_quality, name)

        def in_step(*args: Any, _name: str = name, _wrapped: Any = wrapped, **kwargs: Any) -> Any:
            step[0] = _name
            try:
                return _wrapped(*args, **kwargs)
            finally:
                step[0] = "review"

        setattr(label_quality, name, in_step)
    start = time.perf_counter()
    with Project.open(work / "big.harapp") as project:
        config, built = _scoring_model(project)
        first = project.image_ids()[:1]
        if not project.get_embeddings(model_key(config, built, "whole"), first):
            raise SystemExit("app-review needs the caches phase first: without it every photo would be decoded")
        review = review_labels(project, config, store=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    out["rows"], out["folds"] = len(review.rows), review.folds
    out["backbone_built"] = "timm" in sys.modules
    out["step_peaks_mb"] = {name: round(mb) for name, mb in step_peaks.items()}
    emit(out)


def read_features(project: Any, ids: list[int], dtype: Any) -> Any:
    """Every vector into one matrix (rows in ``ids`` order): straight into it where the store can."""
    import numpy as np

    if hasattr(project, "embedding_matrix"):
        return project.embedding_matrix(FEATURE_KEY, ids, dtype=dtype)[0]
    blobs = project.get_embeddings(FEATURE_KEY, ids)  # before: every vector as bytes at once, then a copy
    return np.stack([np.frombuffer(blobs[i], dtype=np.float32) for i in ids]).astype(dtype, copy=False)


def run_phase(phase: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    settings = {
        "--work": work,
        "--images": args.images,
        "--distinct": args.distinct,
        "--dim": args.dim,
        "--pages": args.pages,
        "--repeat": args.repeat,
        "--dtype": args.dtype,
    }
    command = [sys.executable, __file__, "--phase", phase, *(str(x) for pair in settings.items() for x in pair)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    print(f"[{phase}] {json.dumps(figures)}", flush=True)
    return figures


def report(results: dict[str, dict[str, Any]]) -> None:
    """A table of the figures the goals name, then the rest."""
    rows: list[tuple[str, str, str]] = []

    def add(name: str, value: str, goal: str = "", measured: float | None = None) -> None:
        rows.append((name, value, _verdict(measured, goal) if goal and measured is not None else ""))

    if "import" in results:
        add(
            "import (captions + keypoints JSON)", f"{results['import']['seconds']} s, {results['import']['peak_mb']} MB"
        )
    store, gui, review = results.get("store"), results.get("gui"), results.get("review")
    if store:
        add(
            "Project.open: health check / trusted", f"{_ms(store['open_checked_ms'])} / {_ms(store['open_trusted_ms'])}"
        )
    if gui:
        for name in ("checked", "trusted"):
            figures = gui[f"open_{name}"]
            add(
                f"open: file + gallery painted ({name})",
                f"{figures['first_paint_ms']:.0f} ms",
                "open_ms",
                figures["first_paint_ms"],
            )
            add(
                f"gallery first page, thumbnails decoded ({name})",
                f"{figures['first_page_ms']:.0f} ms",
                "first_page_ms",
                figures["first_page_ms"],
            )
        for cache in ("cold", "disk", "memory"):
            figures, cpu = gui[f"scroll_{cache}_ms"], gui[f"scroll_{cache}_cpu_ms"]
            add(
                f"scroll a page, {cache} thumbnails (median / p95; GUI CPU)",
                f"{figures['median']:.1f} / {figures['p95']:.1f}; {cpu['median']:.1f} / {cpu['p95']:.1f} ms",
                "scroll_p95_ms",
                figures["p95"],
            )
        add("jump with the scroll bar (median)", _ms(gui["jump_ms"]))
        for name, figures in gui["filters"].items():
            add(
                f"filter: {name} (first / median; clear)",
                f"{figures['first']:.0f} / {figures['apply']['median']:.0f}; {figures['clear']['median']:.0f} ms",
            )
        for key, figures in gui["sorts"].items():
            add(f"sort: {key} (first / median)", f"{figures['first']:.0f} / {figures['median']:.0f} ms")
        add(
            "label edit / edit that hides the image (median)",
            f"{_ms(gui['label_edit_ms'])} / {_ms(gui['label_edit_hides_ms'])}",
        )
        add(
            "gui process RSS: Qt / gallery shown / end",
            f"{gui['rss_before_mb']:.0f} / {gui['rss_shown_mb']:.0f} / {gui['rss_end_mb']:.0f} MB",
        )
        add("gui process peak RSS", f"{gui['peak_mb']:.0f} MB", "peak_mb", gui["peak_mb"])
    if store:
        add("stats (median)", _ms(store["stats_ms"]), "stats_ms", store["stats_ms"]["median"])
        add("stats with the missing-photos check (median)", _ms(store["stats_files_ms"]))
        add("snapshot / person-level (median)", f"{_ms(store['snapshot_ms'])} / {_ms(store['snapshot_persons_ms'])}")
        add("store process peak RSS", f"{store['peak_mb']:.0f} MB", "peak_mb", store["peak_mb"])
    if review:
        add(
            "review: read features / label-quality scores",
            f"{review['read_s']} / {review['fit_s']} s ({review['vectors']:,} x {review['dim']} {review['dtype']})",
        )
        add(
            "review RSS: torch imported / features read",
            f"{review['rss_start_mb']:.0f} / {review['rss_after_read_mb']:.0f} MB",
        )
        add("review peak RSS", f"{review['peak_mb']:.0f} MB", "peak_mb", review["peak_mb"])
    app = results.get("app-review")
    if app:
        add("harapp review, whole: seconds / rows", f"{app['seconds']} s / {app['rows']:,} rows ({app['folds']} folds)")
        steps = ", ".join(f"{name} {mb}" for name, mb in app["step_peaks_mb"].items())
        add("harapp review RSS: imports / peak per step", f"{app['rss_imports_mb']:.0f} / {steps} MB")
        add("harapp review peak RSS", f"{app['peak_mb']:.0f} MB", "peak_mb", app["peak_mb"])
    width = max(len(name) for name, _, _ in rows)
    for name, value, verdict in rows:
        print(f"  {name:<{width}}  {value:<34} {verdict}")


def _ms(figures: dict[str, float]) -> str:
    return f"{figures['median']:.0f} ms"


def _verdict(value: float, goal: str) -> str:
    limit, unit = GOALS[goal]
    return f"{'ok' if value < limit else 'MISSED'} (goal < {limit:g} {unit})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=200, help="distinct photos on disk")
    parser.add_argument("--dim", type=int, default=2626, help="float32 features per image")
    parser.add_argument("--pages", type=int, default=40, help="pages to scroll")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16"),
        default="auto",
        help="feature matrix in memory (auto: as `harapp review` holds that many vectors)",
    )
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (reused by later runs)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        work = args.work
        if args.phase == "make":
            phase_make(work, args.images, args.distinct)
        elif args.phase == "import":
            phase_import(work)
        elif args.phase == "extras":
            phase_extras(work, args.dim)
        elif args.phase == "store":
            phase_store(work, args.repeat)
        elif args.phase == "gui":
            phase_gui(work, args.pages, args.repeat)
        elif args.phase == "review":
            phase_review(work, args.dtype, args.dim)
        elif args.phase == "caches":
            phase_caches(work)
        elif args.phase == "app-review":
            phase_app_review(work)
        return 0

    import PySide6

    print(f"machine: {describe(f'PySide6 {PySide6.__version__}', 'QPA ' + os.environ['QT_QPA_PLATFORM'])}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="harapp-scale-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    phases = [p for p in args.phases.split(",") if p]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    results = {phase: run_phase(phase, args, work) for phase in PHASES if phase in phases}
    print(f"{args.images:,} images in {work}:")
    report(results)
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
