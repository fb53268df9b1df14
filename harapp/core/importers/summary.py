"""What an import did, in the words the GUI's summary and the CLI both print."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harapp.core.importers.coco import ImportReport
from harapp.core.importers.folder import FolderImportReport
from harapp.core.store import Project


@dataclass(frozen=True)
class ImportSummary:
    project_path: Path
    created: bool
    images: int
    """Images in the project after the import."""
    imported: int
    labelled: int
    uncertain: int
    missing: int
    """Images the annotations name that were not on disk."""
    named: int = 0
    """Images the annotations name, on disk or not (a deliberate subset names more than it holds)."""
    missing_examples: tuple[str, ...] = ()
    label_source: str = "their captions"
    """Where the labels came from: the COCO captions, or the folder names of an ImageFolder tree."""
    per_class: tuple[tuple[str, int], ...] = ()
    persons: int = 0
    skipped_no_person: int = 0
    orphan_annotations: int = 0
    skipped_files: tuple[tuple[str, str], ...] = ()

    def lines(self) -> list[str]:
        """The summary in words: counts a person can act on, never the importer's field names."""
        head = f"Imported {self.imported:,} images into {self.project_path.name}"
        if self.images != self.imported:
            head += f" ({self.images:,} in the project)"
        head += f": {self.labelled:,} labelled from {self.label_source}"
        if self.label_source == "their captions":
            head += f", {self.uncertain:,} uncertain (captions disagree or are too few)"
        out = [head + "."]
        if self.per_class:
            out.append("Labels per class: " + ", ".join(f"{name} {n:,}" for name, n in self.per_class) + ".")
        if self.persons:
            out.append(f"{self.persons:,} person boxes.")
        if self.missing:
            found = max(0, self.named - self.missing)
            examples = ", ".join(self.missing_examples[:3])
            more = ", …" if self.missing > 3 else ""
            out.append(
                f"The annotations name {self.named:,} images; {found:,} of them are on disk"
                + (f" (not found: e.g. {examples}{more})." if examples else ".")
            )
        if self.skipped_no_person:
            out.append(f"Left out {self.skipped_no_person:,} images without a person (--all-images imports them).")
        if self.orphan_annotations:
            out.append(f"Skipped {self.orphan_annotations:,} annotations that name an image their file does not list.")
        if self.skipped_files:
            out.append(f"Skipped {len(self.skipped_files):,} files:")
            out += [f"  {name}: {why}" for name, why in self.skipped_files[:10]]
            if len(self.skipped_files) > 10:
                out.append(f"  … and {len(self.skipped_files) - 10:,} more")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def summarise(
    report: ImportReport | FolderImportReport | None, project: Project, project_path: Path, created: bool
) -> ImportSummary:
    """The importer's report in the summary's terms; the demo has no report, so the project's counts stand in."""
    stats = project.stats(check_files=False)
    if isinstance(report, ImportReport):
        return ImportSummary(
            project_path, created, stats.images, report.images, report.labelled, report.uncertain, report.missing,
            report.named, tuple(report.missing_examples[:5]), per_class=tuple(sorted(report.per_class.items())),
            persons=report.persons, skipped_no_person=report.skipped_no_person,
            orphan_annotations=report.orphan_annotations,
        )  # fmt: skip
    if isinstance(report, FolderImportReport):
        return ImportSummary(
            project_path, created, stats.images, report.images, report.labelled, 0, 0,
            label_source="their folder's name", skipped_files=report.skipped,
        )  # fmt: skip
    return ImportSummary(
        project_path, created, stats.images, stats.images, stats.labelled, stats.uncertain,
        stats.not_found_at_import, stats.named_by_annotations,
    )  # fmt: skip
