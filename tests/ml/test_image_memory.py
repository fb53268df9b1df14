"""Memory of load_image (issue 11, bad input 10): any image it accepts costs at most 1 GB at its peak.

Each image is decoded in a fresh process that reports its peak resident memory (VmHWM, which a new process
starts afresh, unlike ru_maxrss). The images here have 9 megapixels, to keep the test quick; decoding costs
memory in proportion to the pixels (the conversion strips are scaled down with the image, so that this holds),
so the peak is scaled to the largest image of that format load_image accepts (MAX_PIXELS, or the format's
lower limit). bench/image_memory.py measures the real thing just under
the limits: before this change a 16-bit PNG cost 2.4 GB there and an RGBA PNG 2.1 GB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harapp.ml.images import FORMAT_MAX_PIXELS, MAX_PIXELS, STRIP_PIXELS

REPO = Path(__file__).resolve().parents[2]
SIDE = 3000
BUDGET_MB = 1024

CHILD = """
import json, sys
from harapp.ml import images
from harapp.ml.images import load_image

images.STRIP_PIXELS = int(sys.argv[3])

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

before = status("VmRSS")
img = load_image(sys.argv[1], min_side=int(sys.argv[2]) or None)
print(json.dumps({"before": before, "peak": status("VmHWM"), "size": img.size, "mode": img.mode}))
"""


def _palette_with_transparency() -> Image.Image:
    img = Image.new("P", (SIDE, SIDE), 1)
    img.putpalette([255, 255, 255, 10, 200, 30] + [0] * 762)
    return img


IMAGES = {
    "png-16-bit": ("png", lambda: Image.fromarray(np.full((SIDE, SIDE), 40000, dtype=np.uint16)), {}),
    "png-rgba": ("png", lambda: Image.new("RGBA", (SIDE, SIDE), (10, 200, 30, 128)), {}),
    "gif-transparent": ("gif", _palette_with_transparency, {"transparency": 0}),
    "jpeg-cmyk": ("jpg", lambda: Image.new("CMYK", (SIDE, SIDE), (10, 200, 30, 0)), {}),
    "tiff-float": ("tif", lambda: Image.new("F", (SIDE, SIDE), 0.5), {}),
    "webp-rgba": ("webp", lambda: Image.new("RGBA", (SIDE, SIDE), (10, 200, 30, 128)), {}),
}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc to read peak memory")
@pytest.mark.parametrize(
    ("kind", "min_side"),
    [(kind, 0) for kind in IMAGES] + [("jpeg-cmyk", 224)],  # full size (as the GUI loads) is the worst case
)
def test_peak_memory_at_the_pixel_limit_is_under_1_gb(tmp_path: Path, kind: str, min_side: int) -> None:
    suffix, make, options = IMAGES[kind]
    path = tmp_path / f"{kind}.{suffix}"
    make().save(path, **options)
    with Image.open(path) as img:
        pixels, fmt = img.width * img.height, img.format
    limit = min(MAX_PIXELS, FORMAT_MAX_PIXELS.get(fmt or "", MAX_PIXELS))
    # The strips shrink with the image too, so that everything scales with the pixels.
    strip = int(STRIP_PIXELS * pixels / limit)
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(min_side), str(strip)],
        capture_output=True, text=True, timeout=120, check=False, env={"PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "RGB"
    per_pixel = (report["peak"] - report["before"]) * 2**20 / pixels
    at_limit_mb = report["before"] + per_pixel * limit / 2**20
    assert at_limit_mb <= BUDGET_MB, f"{kind}: {per_pixel:.1f} bytes per pixel, {at_limit_mb:.0f} MB at {limit:,} px"
