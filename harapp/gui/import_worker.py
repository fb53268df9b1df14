"""Background imports (COCO, image folder, demo) with progress, cancel and an end-of-import summary.

The worker opens its own connection to the project file in its thread (an SQLite connection belongs to
one thread); the GUI reloads its own connection's view when the job has finished. Imports are one
transaction, so a cancel or an error leaves the project as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harapp.core.importers.coco import ImportReport, import_coco
from harapp.core.importers.folder import FolderImportReport, import_folder
from harapp.core.importers.summary import ImportSummary, summarise
from harapp.core.importers.target import import_target
from harapp.core.store import Project
from harapp.gui.workers import JobCancelled, Worker

ImportKind = Literal["coco", "folder", "demo"]
DialogImportKind = Literal["coco", "folder"]
"""The imports a person sets up in the import dialog (the demo needs no choices)."""


@dataclass(frozen=True)
class ImportRequest:
    kind: ImportKind
    project_path: Path
    root: Path | None = None
    images_dir: Path | None = None
    annotation_files: tuple[Path, ...] = ()
    layout: str = "auto"
    all_images: bool = False
    demo_images: int | None = None
    """How many demo photos to draw (None: the demo's default)."""


@dataclass(frozen=True)
class ImportProgress:
    stage: str
    done: int
    total: int

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total else None


class ImportWorker(Worker):
    """Runs one ImportRequest; progress is ImportProgress, the result an ImportSummary."""

    def __init__(self, request: ImportRequest) -> None:
        super().__init__()
        self.request = request

    def _progress(self) -> Callable[[str, int, int], None]:
        def report(stage: str, done: int, total: int) -> None:
            # Raising here unwinds the importer's transaction, so a cancel leaves no half import.
            self.check_cancelled()
            self.progressed.emit(ImportProgress(str(stage), int(done), int(total)))

        return report

    def work(self) -> ImportSummary:
        request = self.request
        if request.kind == "demo":
            return self._demo()
        with import_target(request.project_path) as (project, created):
            report = self._run_import(project)
            return summarise(report, project, request.project_path, created)

    def _run_import(self, project: Project) -> ImportReport | FolderImportReport:
        request = self.request
        if request.kind == "coco":
            return import_coco(
                project,
                request.root,
                images_dir=request.images_dir,
                annotation_files=list(request.annotation_files),
                all_images=request.all_images,
                progress=self._progress(),
            )
        if request.kind == "folder":
            if request.root is None:
                raise ValueError("a folder import needs its folder")
            return import_folder(project, request.root, layout=request.layout, progress=self._progress())
        raise ValueError(f"unknown import kind {request.kind!r}")

    def _demo(self) -> ImportSummary:
        from harapp.core.demo.project import create_demo_project

        folder = self.request.project_path.parent
        created = not self.request.project_path.exists()
        if self.request.demo_images is not None:
            path = create_demo_project(folder, n_images=self.request.demo_images, progress=self._progress())
        else:
            path = create_demo_project(folder, progress=self._progress())
        with Project.open(path) as project:
            return summarise(None, project, path, created)


__all__ = ["ImportProgress", "ImportRequest", "ImportWorker", "JobCancelled"]
