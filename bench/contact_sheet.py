"""Draw a contact sheet of labelled images of a project, to check labels by eye.

.venv/bin/python bench/contact_sheet.py PROJECT.harapp OUT.png [--n 40] [--seed 0] [--source caption]
.venv/bin/python bench/contact_sheet.py PROJECT.harapp OUT.png --review [--n 40]

Random labelled images by default; with --review, the first N of `harapp review` (the labels most likely
wrong, with the suggested class and the score), computing the scores when the project has none fresh.
"""

from __future__ import annotations

import argparse
import random
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from harapp.core.store import Project

CELL_W, CELL_H, THUMB_H = 300, 300, 210


def review_choice(project_path: Path, n: int) -> tuple[list, dict[int, str]]:  # -> (records, notes)
    """The first n of harapp review, and each one's 'label -> suggested (score)' note."""
    from harapp.cli.review_commands import compute_scores, fresh_scores

    with Project.open(project_path) as project:
        rows = fresh_scores(project) or compute_scores(project)
        ranked = sorted((r for r in rows if r.queue == "review" and r.person_id is None), key=lambda r: r.score)[:n]
        records = {r.id: r for r in project.images([q.image_id for q in ranked])}
        notes = {q.image_id: f"-> {q.suggested_class} ({q.score:.2f})" for q in ranked}
        return [records[q.image_id] for q in ranked], notes


def draw_sheet(
    project_path: Path, out: Path, n: int, seed: int, source: str, review: bool = False
) -> list[tuple[int, str, str]]:
    notes: dict[int, str] = {}
    if review:
        chosen, notes = review_choice(project_path, n)
    with Project.open(project_path, readonly=True) as project:
        if not review:
            labelled = [r for r in project.images() if r.label and r.label.source == source]
            chosen = sorted(random.Random(seed).sample(labelled, min(n, len(labelled))), key=lambda r: r.id)
        persons = {r.id: project.persons(r.id) for r in chosen}
    cols = 8
    rows = (len(chosen) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * CELL_W, rows * CELL_H), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=11)
    listing = []
    for index, record in enumerate(chosen):
        x0, y0 = (index % cols) * CELL_W, (index // cols) * CELL_H
        with Image.open(record.path) as image:
            image = image.convert("RGB")
            scale = min((CELL_W - 8) / image.width, THUMB_H / image.height)
            thumb = image.resize((int(image.width * scale), int(image.height * scale)))
        sheet.paste(thumb, (x0 + 4, y0 + 4))
        for person in persons[record.id]:
            x, y, w, h = (v * scale for v in person.box)
            draw.rectangle([x0 + 4 + x, y0 + 4 + y, x0 + 4 + x + w, y0 + 4 + y + h], outline=(255, 200, 0))
        label = record.label.class_name if record.label else "-"
        votes = " ".join(f"{k[:4]}{v}" for k, v in sorted(record.votes.items()) if v)
        head = (
            f"#{index + 1} {label.upper()} {notes[record.id]}"
            if record.id in notes
            else f"#{index + 1} {label.upper()}"
        )
        draw.text((x0 + 4, y0 + THUMB_H + 8), f"{head}  [{votes}]", fill="black", font=font)
        caption = textwrap.shorten(record.captions[0] if record.captions else "", 90)
        for line_no, line in enumerate(textwrap.wrap(caption, 46)[:3]):
            draw.text((x0 + 4, y0 + THUMB_H + 28 + 14 * line_no), line, fill=(60, 60, 60), font=small)
        listing.append((index + 1, record.rel_path, f"{label} {notes.get(record.id, '')}".strip()))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("project", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", default="caption")
    parser.add_argument("--review", action="store_true", help="the first N of harapp review, not random ones")
    args = parser.parse_args()
    for number, rel_path, label in draw_sheet(args.project, args.out, args.n, args.seed, args.source, args.review):
        print(f"{number:>3} {label:<28} {rel_path}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
