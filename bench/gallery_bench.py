"""Gallery benchmark: 10,000 images, offscreen; time to the first painted page and the cost per page scrolled.

    python bench/gallery_bench.py [--images 10000] [--distinct 200] [--keep DIR]

The project references `--distinct` generated JPEGs through hard links (copies where links are not
possible), so every row has its own file path and thumbnail cache key, as in a real 10k-photo project.
Reported per page: the synchronous GUI cost of scrolling one page and painting it (what decides
smoothness), and the time until every thumbnail on that page was decoded (cold cache, then from the disk
cache, then from memory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def machine_info() -> str:
    import PySide6

    from bench.machine import describe

    return describe(f"PySide6 {PySide6.__version__}", f"QPA {os.environ.get('QT_QPA_PLATFORM')}")


def build_project(folder: Path, n_images: int, distinct: int) -> Path:
    from PIL import Image, ImageDraw

    from harapp.core.store import Project
    from harapp.core.types import DEFAULT_CLASSES

    originals = folder / "originals"
    images = folder / "images"
    originals.mkdir(parents=True)
    images.mkdir()
    for i in range(distinct):
        img = Image.new("RGB", (640, 480), ((i * 37) % 255, (i * 91) % 255, (i * 53) % 255))
        draw = ImageDraw.Draw(img)
        draw.ellipse((100 + i % 200, 80, 300 + i % 200, 400), fill=(240, 220, 190))
        img.save(originals / f"o{i:04d}.jpg", quality=85)
    project = Project.create(folder / "bench.harapp")
    with project.transaction():
        source = project.add_source("bench", images, {})
        changes = []
        for i in range(n_images):
            name = f"img{i:05d}.jpg"
            try:
                os.link(originals / f"o{i % distinct:04d}.jpg", images / name)
            except OSError:
                (images / name).write_bytes((originals / f"o{i % distinct:04d}.jpg").read_bytes())
            image_id = project.upsert_image(source, name, 640, 480, captions=(f"a person number {i}",))
            if i % 3:
                changes.append((image_id, DEFAULT_CLASSES[i % 4]))
        for image_id, name in changes:
            project.set_label(image_id, name, "caption", reason="import")
    project.close()
    return folder / "bench.harapp"


def visible_ids(view) -> list[int]:  # noqa: ANN001 - GalleryView
    from PySide6.QtCore import QPoint

    from harapp.gui.gallery_model import Role

    ids = []
    rect = view.viewport().rect()
    delegate = view.itemDelegate()
    step_x = max(8, delegate.cell_width // 2 or delegate.cell // 2)
    step_y = max(8, delegate.cell // 2)
    for y in range(4, rect.height(), step_y):
        for x in range(4, rect.width(), step_x):
            index = view.indexAt(QPoint(x, y))
            if index.isValid():
                ids.append(int(index.data(Role.IMAGE_ID)))
    return list(dict.fromkeys(ids))


def wait_page(app, view, timeout: float = 60.0) -> float:  # noqa: ANN001
    """Seconds until every thumbnail on the visible page is decoded (or failed)."""
    start = time.perf_counter()
    loader = view.thumbnails
    ids = visible_ids(view)
    while time.perf_counter() - start < timeout:
        app.processEvents()
        if all(loader.has_thumbnail(i) or loader.error(i) is not None for i in ids):
            view.viewport().repaint()
            return time.perf_counter() - start
        time.sleep(0.002)
    raise TimeoutError("thumbnails did not arrive")


def scroll_pages(app, view, pages: int) -> tuple[list[float], list[float]]:  # noqa: ANN001
    bar = view.verticalScrollBar()
    bar.setValue(0)
    app.processEvents()
    paint_costs, ready_times = [], []
    for _ in range(pages):
        start = time.perf_counter()
        bar.setValue(bar.value() + bar.pageStep())
        view.viewport().repaint()  # paint now: the cost a person feels while scrolling
        app.processEvents()
        paint_costs.append(time.perf_counter() - start)
        ready_times.append(wait_page(app, view))
        if bar.value() >= bar.maximum():
            break
    return paint_costs, ready_times


def describe(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"{name}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} pages"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument("--pages", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="build the project in this folder and keep it")
    parser.add_argument("--project", type=Path, help="measure an existing project instead (e.g. imported coco-har)")
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="harapp-gallery-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HARAPP_CACHE_DIR", str(work / "cache"))
    os.environ.setdefault("HARAPP_CONFIG_DIR", str(work / "config"))
    print(machine_info())

    t0 = time.perf_counter()
    project_path = args.project or work / "bench.harapp"
    if args.project is None and not project_path.exists():
        project_path = build_project(work, args.images, args.distinct)
        print(f"built {args.images} images ({args.distinct} distinct photos): {time.perf_counter() - t0:.1f} s")
    print(f"project: {project_path}")
    thumbs = Path(os.environ["HARAPP_CACHE_DIR"]) / "thumbs"
    shutil.rmtree(thumbs, ignore_errors=True)  # the first pass must decode: a cold cache

    from PySide6.QtWidgets import QApplication

    from harapp.core.store import Project
    from harapp.gui.workspace import Workspace

    app = QApplication.instance() or QApplication([])
    project = Project.open(project_path)
    area = Workspace()
    area.resize(1400, 900)
    area.show()
    app.processEvents()

    start = time.perf_counter()
    area.set_project(project)
    loaded = time.perf_counter() - start
    area.gallery.viewport().repaint()
    app.processEvents()
    first_paint = time.perf_counter() - start
    first_page = first_paint + wait_page(app, area.gallery)
    per_page = len(visible_ids(area.gallery))
    print(f"model loaded: {loaded * 1000:.0f} ms for {area.model.rowCount()} rows (one query)")
    print(
        f"first paint (placeholders): {first_paint * 1000:.0f} ms; first page of {per_page} thumbnails: "
        f"{first_page * 1000:.0f} ms (cold cache)"
    )

    for label in ("cold cache", "memory cache"):
        paints, ready = scroll_pages(app, area.gallery, args.pages)
        print(f"[{label}] {describe('scroll+paint per page', paints)}")
        print(f"[{label}] {describe('all thumbnails on page ready', ready)}")

    area.thumbnails.clear()  # drop memory; the disk cache stays
    paints, ready = scroll_pages(app, area.gallery, args.pages)
    print(f"[disk cache] {describe('scroll+paint per page', paints)}")
    print(f"[disk cache] {describe('all thumbnails on page ready', ready)}")

    start = time.perf_counter()
    area.proxy.update_filter(text="number 12")
    print(
        f"text filter over {area.model.rowCount()} rows: {(time.perf_counter() - start) * 1000:.0f} ms "
        f"({area.proxy.rowCount()} shown)"
    )
    area.proxy.update_filter(text="")
    start = time.perf_counter()
    area.proxy.set_sort_key("confidence")
    print(f"sort by confidence: {(time.perf_counter() - start) * 1000:.0f} ms")

    area.shutdown()
    area.set_project(None)
    project.close()
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
