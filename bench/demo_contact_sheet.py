"""Render a contact sheet of demo images with their true activity, to eyeball the procedural people.

Usage: python bench/demo_contact_sheet.py [--n 24] [--seed 0] [--out /tmp/demo_sheet.png] [--keypoints]
Also prints how long make_demo took for 200 images when --time is given.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from harapp.core.demo.dataset import make_demo
from harapp.core.demo.pose import SKELETON


def contact_sheet(root: Path, n: int, out: Path, keypoints: bool, cols: int = 6, cell: int = 220) -> None:
    doc = json.loads((root / "annotations" / "person_keypoints_demo.json").read_text())
    caps = json.loads((root / "annotations" / "captions_demo.json").read_text())
    first_caption = {}
    for a in caps["annotations"]:
        first_caption.setdefault(a["image_id"], a["caption"])
    anns: dict[int, list[dict]] = {}
    for a in doc["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    entries = doc["images"][:n]
    rows = (len(entries) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 28)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, entry in enumerate(entries):
        img = Image.open(root / "images" / entry["file_name"]).convert("RGB")
        if keypoints:
            d = ImageDraw.Draw(img)
            for a in anns.get(entry["id"], []):
                k = a["keypoints"]
                x, y, w, h = a["bbox"]
                d.rectangle((x, y, x + w, y + h), outline=(255, 255, 0))
                for p, q in SKELETON:
                    if k[3 * p - 1] > 0 and k[3 * q - 1] > 0:
                        d.line((k[3 * p - 3], k[3 * p - 2], k[3 * q - 3], k[3 * q - 2]), fill=(0, 255, 255))
        img.thumbnail((cell - 4, cell - 4))
        cx, cy = (i % cols) * cell, (i // cols) * (cell + 28)
        sheet.paste(img, (cx + 2, cy + 2))
        label = f"{entry['id']} {entry['demo_truth']} [{entry['demo_caption_noise']}]"
        draw.text((cx + 2, cy + cell - 2), label, fill=(0, 0, 0))
        draw.text((cx + 2, cy + cell + 10), first_caption.get(entry["id"], "")[:36], fill=(90, 90, 90))
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/demo_sheet.png"))
    parser.add_argument("--keypoints", action="store_true", help="overlay boxes and skeletons")
    parser.add_argument("--time", action="store_true", help="also time make_demo for 200 images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.time:
            t0 = time.perf_counter()
            make_demo(Path(tmp) / "t200", 200, seed=args.seed)
            print(f"make_demo(200 images): {time.perf_counter() - t0:.2f} s")
        root = make_demo(Path(tmp) / "sheet", args.n, seed=args.seed)
        contact_sheet(root, args.n, args.out, args.keypoints)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
