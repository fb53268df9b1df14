"""What an import did, in the words the GUI's summary and the CLI both print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harapp.core.importers.coco import ImportReport
from harapp.core.importers.folder import FolderImportReport
from harapp.core.store import Project


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
    label_source: str = "captions"
    """Where the labels came from: the COCO captions, or the folder names of an ImageFolder tree."""

    def text(self) -> str:
        lines = [
            f"Imported {self.imported} images into {self.project_path.name} ({self.images} in the project).",
            f"Labelled from {self.label_source}: {self.labelled}",
            f"Uncertain (captions disagree or too few): {self.uncertain}",
            f"Missing files (named by the annotations, not on disk): {self.missing}",
        ]
        lines += [f"{name.capitalize()}: {value}" for name, value in self.details]
        if self.missing_examples:
            lines.append("Missing files, for example:")
            lines += [f"  {m}" for m in self.missing_examples]
            if self.missing > len(self.missing_examples):
                lines.append(f"  … and {self.missing - len(self.missing_examples)} more")
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
            label_source="folder names",
        )
    return ImportSummary(
        **common,
        imported=int(stats["images"]),
        labelled=int(stats["labelled"]),
        uncertain=int(stats["uncertain"]),
        missing=int(stats["missing_files"]),
    )
