"""Reading any photo a person may drop on the app into a plain RGB PIL image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harapp.core.errors import ImageFileError

# About 90 megapixels: bigger than any camera photo people label, far below what exhausts memory.
MAX_PIXELS = 90_000_000


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: PIL's convert("RGB") clips every value above 255 to white; map 0..65535 to 0..255.
        arr = np.asarray(img, dtype=np.float64)
        scale = 1 / 257 if arr.size and arr.max() > 255 else 1.0
        img = Image.fromarray(np.rint(arr * scale).clip(0, 255).astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent parts become white, as a viewer shows them, not the black of raw RGB values.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: Path | str, max_pixels: int = MAX_PIXELS, min_side: int | None = None) -> Image.Image:
    """Open an image file as RGB, upright per EXIF, first frame only; ImageFileError otherwise.

    min_side: the caller will shrink the image so its short side is about this many pixels; a JPEG is then
    decoded at a reduced scale (1/2, 1/4, 1/8) that still keeps at least that many, several times faster.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"Cannot read image {path}: file does not exist.")
    try:
        # Pillow reads only the header here; the size check below runs before any pixel is decoded.
        # Pillow's own global limit is left alone because thumbnail threads share it.
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                raise Image.DecompressionBombError(f"{img.width}x{img.height} pixels")
            img.seek(0)  # animated GIF/WebP: the first frame
            if min_side and img.format == "JPEG":
                img.draft(None, (min_side, min_side))
            img.load()
            upright = ImageOps.exif_transpose(img)
            return _to_rgb(upright if upright is not None else img)
    except Image.DecompressionBombError as exc:
        raise ImageFileError(
            f"Refusing to open image {path}: it is too large ({exc}); the limit is {max_pixels:,} pixels, "
            "a guard against decompression bombs."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageFileError(f"Cannot read image {path}: not an image format Pillow recognises.") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageFileError(f"Cannot read image {path}: {exc}") from exc


def crop_largest_box(
    img: Image.Image, boxes: tuple[tuple[float, float, float, float], ...], margin: float = 0.15
) -> Image.Image:
    """Crop the largest person box (COCO x, y, w, h) with a margin; the whole image when there is none."""
    usable = [b for b in boxes if b[2] > 1 and b[3] > 1]
    if not usable:
        return img
    x, y, w, h = max(usable, key=lambda b: b[2] * b[3])
    mx, my = w * margin, h * margin
    left = max(0, int(x - mx))
    top = max(0, int(y - my))
    right = min(img.width, int(round(x + w + mx)))
    bottom = min(img.height, int(round(y + h + my)))
    if right - left < 2 or bottom - top < 2:
        return img
    return img.crop((left, top, right, bottom))
