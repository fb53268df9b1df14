"""Background imports (COCO, image folder, demo) with progress, cancel and an end-of-import summary.

The worker opens its own connection to the project file in its thread (an SQLite connection belongs to
one thread); the GUI reloads its own connection's view when the job has finished. Imports are one
transaction, so a cancel or an error leaves the project as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harapp.core.coco_import import ImportReport, import_coco
from harapp.core.folder_import import FolderImportReport, import_folder
from harapp.core.store import Project
from harapp.gui.workers import JobCancelled, Worker


@dataclass(frozen=True)
class ImportRequest:
    kind: str
    """'coco', 'folder' or 'demo'."""
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


@dataclass(frozen=True)
class ImportSummary:
    project_path: Path
    created: bool
    images: int
    imported: int
    labelled: int
    uncertain: int
    missing: int
    missing_examples: tuple[str, ...] = ()
    details: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """Every other number the importer reported, as (name, text) pairs, for the summary view."""
    named: int | None = None
    """Images the annotation files name (COCO), whether or not they are on disk."""

    def text(self) -> str:
        lines = [f"Imported {self.imported:,} images into {self.project_path.name} ({self.images:,} in the project)."]
        if self.named is not None and self.missing:
            # A subset download is normal: say how much of the dataset is here, not that thousands are "missing".
            on_disk = self.named - self.missing
            lines.append(
                f"The annotations name {self.named:,} images; {on_disk:,} of them are on disk "
                "(the others are skipped; import again after downloading more)."
            )
        elif self.missing:
            lines.append(f"Files the project names that are not on disk: {self.missing:,}")
        lines += [
            f"Labelled from captions: {self.labelled:,}",
            f"Uncertain (captions disagree or too few): {self.uncertain:,}",
        ]
        lines += [f"{name[:1].upper()}{name[1:]}: {value}" for name, value in self.details]
        if self.missing_examples:
            lines.append("Not on disk, for example:")
            lines += [f"  {m}" for m in self.missing_examples]
            if self.missing > len(self.missing_examples):
                lines.append(f"  … and {self.missing - len(self.missing_examples):,} more")
        return "\n".join(lines)


def _examples(pairs: tuple[tuple[str, str], ...]) -> str:
    """How many files were skipped, with the first few and why."""
    shown = "; ".join(f"{name}: {why}" for name, why in pairs[:3])
    more = f"; … {len(pairs) - 3} more" if len(pairs) > 3 else ""
    return f"{len(pairs)}" + (f" ({shown}{more})" if shown else "")


def summarise(
    report: ImportReport | FolderImportReport | None, project: Project, project_path: Path, created: bool
) -> ImportSummary:
    """The importer's report in the summary's terms; the demo has no report, so the project's counts stand in."""
    stats = project.stats()
    common: dict[str, Any] = {"project_path": project_path, "created": created, "images": int(stats["images"])}
    if isinstance(report, ImportReport):
        per_class = ", ".join(f"{name} {n}" for name, n in sorted(report.per_class.items())) or "none"
        return ImportSummary(
            **common,
            imported=report.images,
            labelled=report.labelled,
            uncertain=report.uncertain,
            missing=report.missing,
            missing_examples=tuple(report.missing_examples[:5]),
            named=report.images + report.missing + report.skipped_no_person,
            details=(
                ("labels per class", per_class),
                ("persons", str(report.persons)),
                ("skipped: no person in the annotations", str(report.skipped_no_person)),
            ),
        )
    if isinstance(report, FolderImportReport):
        return ImportSummary(
            **common,
            imported=report.images,
            labelled=report.labelled,
            uncertain=0,
            missing=0,
            details=(("skipped files", _examples(report.skipped)),),
        )
    return ImportSummary(
        **common,
        imported=int(stats["images"]),
        labelled=int(stats["labelled"]),
        uncertain=int(stats["uncertain"]),
        missing=int(stats["missing_files"]),
    )


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
        created = not request.project_path.exists()
        project = Project.open_or_create(request.project_path)
        try:
            report = self._run_import(project)
            return summarise(report, project, request.project_path, created)
        except BaseException:
            project.close()
            if created:
                _remove_project_file(request.project_path)
            raise
        finally:
            project.close()

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
            return import_folder(project, request.root, layout=request.layout, progress=self._progress())
        raise ValueError(f"unknown import kind {request.kind!r}")

    def _demo(self) -> ImportSummary:
        from harapp.core.demo_project import create_demo_project

        folder = self.request.project_path.parent
        created = not self.request.project_path.exists()
        if self.request.demo_images is not None:
            path = create_demo_project(folder, n_images=self.request.demo_images, progress=self._progress())
        else:
            path = create_demo_project(folder, progress=self._progress())
        with Project.open(path) as project:
            return summarise(None, project, path, created)


def _remove_project_file(path: Path) -> None:
    # An import into a new file that failed leaves no empty project behind (the import was all-or-nothing).
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(str(path) + suffix).unlink(missing_ok=True)


__all__ = ["ImportProgress", "ImportRequest", "ImportSummary", "ImportWorker", "JobCancelled"]
