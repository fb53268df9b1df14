"""The built-in demo project: generated offline on first use, then reused."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from harapp.core.paths import demo_project_path

Progress = Callable[[str, int, int], None]
DEMO_IMAGES = 200


def create_demo_project(
    folder: Path, n_images: int = DEMO_IMAGES, seed: int = 0, progress: Progress | None = None
) -> Path:
    """Generate the demo dataset in folder/dataset and import it into folder/demo.harapp."""
    from harapp.core.demo.dataset import make_demo
    from harapp.core.importers.coco import import_coco
    from harapp.core.store import Project

    folder = Path(folder)
    dataset = folder / "dataset"
    project_path = folder / "demo.harapp"
    if project_path.exists():
        return project_path

    def drawing(done: int, total: int) -> None:
        if progress:
            progress("drawing demo images", done, total)

    make_demo(dataset, n_images=n_images, seed=seed, progress=drawing)
    partial = project_path.with_suffix(".harapp.partial")
    partial.unlink(missing_ok=True)
    try:
        with Project.create(partial) as project:
            import_coco(project, dataset, progress=progress)
        # Rename only when complete, so an interrupted first start never leaves a half-built demo behind.
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
        partial.replace(project_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        shutil.rmtree(dataset, ignore_errors=True)
        raise
    return project_path


def ensure_demo_project(progress: Progress | None = None) -> Path:
    """The demo project in the user data folder, created on first use."""
    path = demo_project_path()
    if path.exists():
        return path
    return create_demo_project(path.parent, progress=progress)
