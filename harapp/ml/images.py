"""Reading any photo a person may drop on the app into a plain RGB PIL image."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from harapp.core.errors import ImageFileError

# About 90 megapixels: bigger than any camera photo people label, far below what exhausts memory.
MAX_PIXELS = 90_000_000
# Decoders that need more than the usual ~4 bytes per pixel get a lower limit, so that any image accepted
# costs at most about 1 GB to load (bench/image_memory.py measures it): libwebp keeps its own RGBA canvas
# beside the one Pillow fills (16 bytes per pixel at the peak), OpenJPEG decodes into 32-bit integers per
# component (18), libavif into its own planes (14).
FORMAT_MAX_PIXELS = {"WEBP": 40_000_000, "JPEG2000": 45_000_000, "AVIF": 60_000_000}
# Rows are converted in strips of about this many pixels, so no conversion holds a second full-size copy
# in a wider type (a float64 copy of a 16-bit PNG near the limit was 720 MB, five of them at once 3 GB).
STRIP_PIXELS = 4_000_000

_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transpose that shows the photo upright (as ImageOps.exif_transpose)."""


def _strips(height: int, width: int) -> range:
    return range(0, height, max(1, STRIP_PIXELS // max(1, width)))


def _deep_to_l(img: Image.Image) -> Image.Image:
    """16- or 32-bit greyscale as 8-bit: PIL's convert clips every value above 255 to white, so 0..65535 is
    mapped to 0..255 (images whose values stay within 0..255 keep them), one strip at a time."""
    arr = np.asarray(img)
    scale = 1 / 257 if arr.size and arr.max() > 255 else 1.0
    out = np.empty(arr.shape, dtype=np.uint8)
    for top in _strips(arr.shape[0], arr.shape[1]):
        rows = slice(top, top + max(1, STRIP_PIXELS // max(1, arr.shape[1])))
        out[rows] = np.rint(arr[rows] * scale).clip(0, 255)
    return Image.fromarray(out, mode="L")


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info)


def _on_white(img: Image.Image) -> Image.Image:
    """Transparent parts become white, as a viewer shows them, not the black of raw RGB values; composited a
    strip at a time, so the RGBA copy of the whole image never exists beside the result."""
    out = Image.new("RGB", img.size, (255, 255, 255))
    for top in _strips(img.height, img.width):
        box = (0, top, img.width, min(img.height, top + STRIP_PIXELS // max(1, img.width)))
        strip = img.crop(box).convert("RGBA")
        out.paste(strip, box[:2], strip)
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    # No box-average reduce here for min_side, though it would save memory and time: an image read by path
    # would then differ from the same image handed over in memory, and predictions with it (issue 10).
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        img = _deep_to_l(img)
    if _has_alpha(img):
        return _on_white(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    # Pillow reads only the header here; the size check below runs before any pixel is decoded.
    # Pillow's own global limit is left alone because thumbnail threads share it.
    img = Image.open(path)
    limit = min(max_pixels, FORMAT_MAX_PIXELS.get(img.format or "", max_pixels))
    if img.width * img.height > limit:
        img.close()
        raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels, {img.format}; the limit is {limit:,}")
    return img


def load_image(path: Path | str, max_pixels: int = MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Open an image file as RGB, upright per EXIF, first frame only; ImageFileError otherwise.

    min_side: the caller will shrink the image so its short side is about this many pixels; a JPEG is then
    decoded at a reduced scale (1/2, 1/4, 1/8) and a JPEG 2000 with fewer resolution levels, keeping at least
    that many, several times faster and in a fraction of the memory (other decoders cannot skip pixels).
    Memory: any image accepted costs at most about 1 GB at its peak (see FORMAT_MAX_PIXELS, STRIP_PIXELS).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"Cannot read image {path}: file does not exist.")
    try:
        img = _open_checked(path, max_pixels)
        try:
            img.seek(0)  # animated GIF/WebP: the first frame
            if min_side and img.format == "JPEG":
                img.draft(None, (min_side, min_side))
            elif min_side and img.format == "JPEG2000":
                # Skip resolution levels while decoding: each halves both sides (at most 5: OpenJPEG's default).
                levels = int(math.log2(max(1, min(img.size) // min_side)))
                img.reduce = min(levels, 5)  # type: ignore[assignment,method-assign]
            img.load()
            method = _ORIENTATION.get(img.getexif().get(0x0112, 1))
            out = _to_rgb(img)
            if out is img:
                # No conversion was needed, but the result must outlive the file (close() drops the pixels
                # of a multi-frame file's image): detach it when Pillow still holds the file open.
                out = img.copy() if getattr(img, "fp", None) is not None else img
        finally:
            if getattr(img, "fp", None) is not None:
                img.close()
        return out.transpose(method) if method is not None else out
    except Image.DecompressionBombError as exc:
        raise ImageFileError(
            f"Refusing to open image {path}: it is too large ({exc}), a guard against decompression bombs."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageFileError(f"Cannot read image {path}: not an image format Pillow recognises.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"Cannot read image {path}: {exc}") from exc
