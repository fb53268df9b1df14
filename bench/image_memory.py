"""Peak memory of load_image on images just under the decompression-bomb limit (issue 11, bad input 10).

Each image is written, then decoded in a fresh process that reports its peak resident memory
(resource.getrusage) and the resident memory it had before decoding (Python, numpy and Pillow imported).

Run: PYTHONPATH=. .venv/bin/python bench/image_memory.py [--megapixels 89] [--min-side 224] [FORMAT ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WRITERS = {
    "png16": ("png", lambda w, h: Image.fromarray(np.full((h, w), 40000, dtype=np.uint16))),
    "png-rgba": ("png", lambda w, h: Image.new("RGBA", (w, h), (10, 200, 30, 128))),
    "png-rgb": ("png", lambda w, h: Image.new("RGB", (w, h), (10, 200, 30))),
    "png-palette-alpha": ("png", lambda w, h: _palette(w, h)),
    "gif": ("gif", lambda w, h: _palette(w, h)),
    "jpeg": ("jpg", lambda w, h: Image.new("RGB", (w, h), (10, 200, 30))),
    "jpeg-cmyk": ("jpg", lambda w, h: Image.new("CMYK", (w, h), (10, 200, 30, 0))),
    "tiff-float": ("tif", lambda w, h: Image.new("F", (w, h), 0.5)),
    "bmp": ("bmp", lambda w, h: Image.new("RGB", (w, h), (10, 200, 30))),
    "webp-rgba": ("webp", lambda w, h: Image.new("RGBA", (w, h), (10, 200, 30, 128))),
    "tiff-rgba": ("tif", lambda w, h: Image.new("RGBA", (w, h), (10, 200, 30, 128))),
    "tiff16": ("tif", lambda w, h: Image.fromarray(np.full((h, w), 40000, dtype=np.uint16))),
    "jpeg2000": ("jp2", lambda w, h: Image.new("RGB", (w, h), (10, 200, 30))),
    "avif-rgba": ("avif", lambda w, h: Image.new("RGBA", (w, h), (10, 200, 30, 128))),
}

CHILD = """
import json, sys
from harapp.ml.images import load_image

def status(key):
    # VmHWM (peak) and VmRSS of this process; ru_maxrss would carry the parent's peak across fork and exec.
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

before = status("VmRSS")
img = load_image(sys.argv[1], min_side=int(sys.argv[2]) or None)
print(json.dumps({"before_mb": before, "peak_mb": status("VmHWM"), "size": img.size, "mode": img.mode}))
"""


def _palette(w: int, h: int) -> Image.Image:
    img = Image.new("P", (w, h), 1)
    img.putpalette([255, 255, 255, 10, 200, 30] + [0] * 762)
    img.info["transparency"] = 0
    return img


def write(kind: str, folder: Path, megapixels: float) -> Path:
    suffix, make = WRITERS[kind]
    side = int((megapixels * 1e6) ** 0.5)
    if kind.startswith("webp"):
        side = min(side, 16383)  # WebP's own limit
    path = folder / f"{kind}.{suffix}"
    # Written by a child process, so the memory it takes is not counted in the measuring child's peak.
    options = "transparency=0" if kind == "gif" else ""
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import image_memory as m; "
        f"m.WRITERS[{kind!r}][1]({side}, {side}).save({str(path)!r}, {options})"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    return path


def measure(path: Path, min_side: int) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(min_side)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else f"exit {out.returncode}"}
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kinds", nargs="*", default=list(WRITERS))
    parser.add_argument("--megapixels", type=float, default=89.0)
    parser.add_argument("--min-side", type=int, default=0, help="as the predictor asks (0: full size, as the GUI)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.kinds:
            path = write(kind, Path(folder), args.megapixels)
            result = measure(path, args.min_side)
            size_kb = path.stat().st_size / 1024
            if "error" in result:
                print(f"{kind:<18} {size_kb:>9.0f} KB  error: {result['error']}")
            else:
                print(
                    f"{kind:<18} {size_kb:>9.0f} KB  peak {result['peak_mb']:7.0f} MB "
                    f"(before decoding {result['before_mb']:.0f} MB)  -> {result['size']} {result['mode']}"
                )
            path.unlink()


if __name__ == "__main__":
    main()
