"""Subcommands over the project store: demo, import, stats, label, classes, export, history, undo."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from harapp.cli.progress import stage_bars
from harapp.core.errors import HarappError, MissingFilesError
from harapp.core.store import Project
from harapp.core.types import ProjectStats


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="generate the offline demo dataset in DIR and import it")
    demo.add_argument("dir", type=Path)
    demo.add_argument("--images", type=int, default=200, help="how many images to draw (default 200)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=cmd_demo)

    coco = subparsers.add_parser("import-coco", help="import a COCO download (captions, instances, keypoints)")
    coco.add_argument("root", type=Path, nargs="?", help="COCO root holding val2017/ (or train2017/) and annotations/")
    coco.add_argument("--project", "-p", type=Path, required=True, help="project file (created when missing)")
    coco.add_argument("--images", type=Path, help="images folder, when not under ROOT")
    coco.add_argument("--annotations", type=Path, nargs="+", default=[], help="annotation JSON files")
    coco.add_argument("--all-images", action="store_true", help="also import images without a person")
    coco.set_defaults(handler=cmd_import_coco)

    folder = subparsers.add_parser("import-folder", help="import an ImageFolder tree (labelled) or a flat folder")
    folder.add_argument("dir", type=Path)
    folder.add_argument("--project", "-p", type=Path, required=True)
    folder.add_argument("--layout", choices=("auto", "imagefolder", "flat"), default="auto")
    folder.set_defaults(handler=cmd_import_folder)

    stats = subparsers.add_parser("stats", help="counts per class, per source, and uncertain")
    stats.add_argument("project", type=Path)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(handler=cmd_stats)

    label = subparsers.add_parser("label", help="set the label of an image (id, COCO id or file name)")
    label.add_argument("project", type=Path)
    label.add_argument("image", help="#ID (the project's id), coco:ID, a file name or a path")
    label.add_argument("cls", metavar="CLASS", help="class name, or 'none' to clear the label")
    label.add_argument("--person", type=int, help="label this person (id from `harapp show`) instead")
    label.set_defaults(handler=cmd_label)

    show = subparsers.add_parser("show", help="an image's captions, votes, persons, label and history")
    show.add_argument("project", type=Path)
    show.add_argument("image", help="#ID (the project's id), coco:ID, a file name or a path")
    show.set_defaults(handler=cmd_show)

    classes = subparsers.add_parser("classes", help="list, add, rename or merge classes; undo the last change")
    classes.add_argument("project", type=Path)
    ops = classes.add_subparsers(dest="op", metavar="OP")
    ops.add_parser("list", help="list the classes")
    add = ops.add_parser("add", help="add a class")
    add.add_argument("name")
    rename = ops.add_parser("rename", help="rename a class")
    rename.add_argument("old")
    rename.add_argument("new")
    merge = ops.add_parser("merge", help="merge classes, e.g. merge walking running --into walking/running")
    merge.add_argument("names", nargs="+")
    merge.add_argument("--into", required=True)
    ops.add_parser("undo", help="undo the last class change")
    classes.set_defaults(handler=cmd_classes, op="list")

    export = subparsers.add_parser("export", help="export labels as CSV, COCO JSON or an ImageFolder tree")
    export.add_argument("project", type=Path)
    export.add_argument("--format", "-f", choices=("csv", "coco", "folders"), required=True)
    export.add_argument("out", type=Path)
    export.add_argument("--copy", action="store_true", help="folders: copy images instead of linking")
    export.add_argument(
        "--skip-missing", action="store_true", help="leave out images whose photo is gone from disk (default: refuse)"
    )
    export.set_defaults(handler=cmd_export)

    repair = subparsers.add_parser(
        "repair", help="copy what is readable of a damaged project into a new project file (the damaged one is kept)"
    )
    repair.add_argument("project", type=Path)
    repair.add_argument("--out", type=Path, default=None, help="the new file (default: NAME.repaired.harapp)")
    repair.set_defaults(handler=cmd_repair)

    undo = subparsers.add_parser("undo", help="undo the last label change (or bulk change)")
    undo.add_argument("project", type=Path)
    undo.set_defaults(handler=cmd_undo)


def open_project(path: Path, readonly: bool = False) -> Project:
    """Project.open, saying so on stderr when the project could only be opened read-only."""
    project = Project.open(path, readonly=readonly)
    if project.readonly_reason is not None:
        print(f"harapp: note: {path} is open read-only: {project.readonly_reason}", file=sys.stderr)
    return project


def _open(path: Path) -> Project:
    return open_project(path)


def _print_stats(stats: ProjectStats, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(stats.to_dict(), indent=2))
        return
    images = stats.images
    share = 100.0 * stats.labelled / images if images else 0.0
    print(f"images      {images}")
    print(f"labelled    {stats.labelled} ({share:.0f}%)")
    print(f"uncertain   {stats.uncertain} (caption votes but no agreed label)")
    print(f"unlabelled  {stats.unlabelled}")
    print(f"persons     {stats.persons} ({stats.person_labels} labelled)")
    if stats.not_found_at_import:
        found = stats.named_by_annotations - stats.not_found_at_import
        print(f"imported    annotations name {stats.named_by_annotations:,} images; {found:,} found on disk")
    if stats.missing:
        print(f"missing     {stats.missing} of {images} photos are gone from disk since the import, e.g.")
        for path in stats.missing_examples:
            print(f"              {path}")
        print("            (moved folder? the app's File > Locate folder... points the project at its new place)")
    print("per class:")
    for name, count in stats.per_class.items():
        print(f"  {name:<20} {count:>6}")
    print("per source:")
    for name, count in stats.per_source.items():
        print(f"  {name:<20} {count:>6}")


def cmd_demo(args: argparse.Namespace) -> int:
    from harapp.core.demo.project import create_demo_project

    project_path = Path(args.dir) / "demo.harapp"
    if project_path.exists():
        raise HarappError(f"{project_path} already exists; choose an empty folder")
    try:
        with stage_bars() as bars:
            create_demo_project(args.dir, n_images=args.images, seed=args.seed, progress=bars)
    except OSError as exc:
        where = exc.filename or args.dir
        raise HarappError(f"{where}: cannot write the demo there ({exc.strerror or exc})") from exc
    print(f"demo dataset: {Path(args.dir) / 'dataset'}")
    print(f"project:      {project_path}")
    with Project.open(project_path) as project:
        _print_stats(project.stats())
    return 0


def print_demo_stats() -> int:
    """Create the demo project if needed and print its statistics (the no-display fallback of --demo)."""
    from harapp.core.demo.project import ensure_demo_project

    with stage_bars() as bars:
        path = ensure_demo_project(progress=bars)
    print(f"demo project: {path}")
    with Project.open(path) as project:
        _print_stats(project.stats())
    return 0


def cmd_import_coco(args: argparse.Namespace) -> int:
    from harapp.core.importers.coco import import_coco
    from harapp.core.importers.summary import summarise
    from harapp.core.importers.target import import_target

    if args.root is None and args.images is None:
        raise HarappError("give a COCO root folder, or --images DIR with --annotations FILE...")
    with import_target(args.project) as (project, created):
        with stage_bars() as bars:
            report = import_coco(
                project,
                args.root,
                images_dir=args.images,
                annotation_files=args.annotations,
                all_images=args.all_images,
                progress=bars,
            )
        print(summarise(report, project, args.project, created).text())
        print()
        _print_stats(project.stats())
    return 0


def cmd_import_folder(args: argparse.Namespace) -> int:
    from harapp.core.importers.folder import import_folder
    from harapp.core.importers.summary import summarise
    from harapp.core.importers.target import import_target

    with import_target(args.project) as (project, created):
        with stage_bars() as bars:
            report = import_folder(project, args.dir, layout=args.layout, progress=bars)
        print(summarise(report, project, args.project, created).text())
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with open_project(args.project, readonly=True) as project:
        _print_stats(project.stats(), args.json)
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        image_id = _resolve(project, args.image)
        name = None if args.cls.lower() == "none" else args.cls
        entry = project.set_label(image_id, name, "human", person_id=args.person)
        record = project.image(image_id)
    target = f"image {image_id} ({record.rel_path})" + (f" person {args.person}" if args.person else "")
    if entry is None:
        print(f"{target}: already {args.cls}")
    else:
        print(f"{target}: {entry.old_class or 'unlabelled'} -> {entry.new_class or 'unlabelled'} (saved)")
    return 0


def _resolve(project: Project, ref: str) -> int:
    match = project.resolve_image(ref)
    if match.note:
        print(f"harapp: {match.note}", file=sys.stderr)
    return match.image_id


def cmd_show(args: argparse.Namespace) -> int:
    with open_project(args.project, readonly=True) as project:
        record = project.image(_resolve(project, args.image))
        print(f"image #{record.id}: {record.path} ({record.width}x{record.height}, COCO id {record.coco_id})")
        if not os.path.isfile(record.path):
            print("file: MISSING on disk (deleted, or its folder moved: the app's File > Locate folder... fixes that)")
        label = record.label
        print(f"label: {label.class_name} ({label.source})" if label else "label: none")
        print(f"caption votes: {json.dumps(record.votes)}" + ("  [uncertain]" if record.uncertain else ""))
        for caption in record.captions:
            print(f"  - {caption}")
        person_labels = project.person_labels(record.id)
        for person in project.persons(record.id):
            person_label = person_labels.get(person.id)
            box = ", ".join(f"{v:.0f}" for v in person.box)
            print(f"person {person.id}: box [{box}]" + (f" label {person_label.class_name}" if person_label else ""))
        for entry in project.history(record.id, limit=20):
            print(f"{entry.at}  {entry.old_class or '-'} -> {entry.new_class or '-'}  ({entry.reason})")
    return 0


def cmd_classes(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        if args.op == "add":
            project.add_class(args.name)
        elif args.op == "rename":
            project.rename_class(args.old, args.new)
        elif args.op == "merge":
            project.merge_classes(args.names, args.into)
        elif args.op == "undo":
            print(project.undo_class_op())
        counts = project.stats(check_files=False).per_class
        for info in project.classes():
            print(
                f"{info.position + 1}. {info.name:<20} {counts.get(info.name, 0):>6} labels"
                f"   (caption words: {', '.join(info.concepts)})"
            )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from harapp.core import export

    with open_project(args.project, readonly=True) as project:
        try:
            if args.format == "csv":
                count = export.export_csv(project, args.out, skip_missing=args.skip_missing)
            elif args.format == "coco":
                count = export.export_coco(project, args.out, skip_missing=args.skip_missing)
            else:
                count = export.export_folders(project, args.out, link=not args.copy, skip_missing=args.skip_missing)
        except MissingFilesError as exc:
            raise MissingFilesError(f"{exc}\n(--skip-missing exports the others)", exc.missing) from exc
        stats = project.stats(check_files=False)
        wanted = stats.labelled if args.format == "folders" else stats.images  # a tree holds labelled images only
        gone = wanted - count if args.skip_missing else 0
    left_out = f"; {gone} images with missing photos left out" if gone else ""
    print(f"exported {count} images as {args.format} to {args.out}{left_out}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    with _open(args.project) as project:
        undone = project.undo_last()
    if not undone:
        print("nothing to undo", file=sys.stderr)
        return 1
    for entry in undone:
        print(f"image {entry.image_id}: {entry.old_class or 'unlabelled'} -> {entry.new_class or 'unlabelled'}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    from harapp.core.store.repair import repair_project

    with stage_bars() as bars:
        report = repair_project(args.project, args.out, progress=bars)
    print(f"repaired copy: {report.target}")
    for table in report.tables:
        lost = []
        if table.unreadable:
            lost.append(f"{table.unreadable:,} unreadable")
        if table.rejected:
            lost.append(f"{table.rejected:,} refused (they refer to lost rows or hold garbage)")
        print(f"  {table.table:<12} {table.copied:>8,} rows copied" + (f"; {', '.join(lost)}" if lost else ""))
    verdict = "nothing was lost" if not report.lost else "some rows were lost (see above)"
    print(f"{verdict}. {report.source} is unchanged: open the copy, check it, then use it in its place.")
    return 0
