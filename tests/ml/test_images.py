"""load_image on every odd format a person may drop on the window, generated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harapp.core.errors import ImageFileError
from harapp.ml.images import load_image


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif.tobytes())
    out = load_image(path)
    assert out.size == (20, 40)
    assert out.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    out = load_image(path)
    r, g, b = out.getpixel((8, 8))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_grayscale_png(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    Image.new("L", (10, 12), 128).save(path)
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (10, 12)
    assert out.getpixel((0, 0)) == (128, 128, 128)


def test_16bit_png_keeps_contrast(tmp_path: Path) -> None:
    arr = np.zeros((8, 8), dtype=np.uint16)
    arr[:, 4:] = 40000
    arr[:, 7] = 65535
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    out = np.asarray(load_image(path))
    # Naive conversion clips everything non-zero to white and all detail is lost; this keeps dark vs bright.
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 5].tolist() == [156, 156, 156]  # 40000 / 257, not clipped to white
    assert out[0, 7].tolist() == [255, 255, 255]


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    img.putpixel((1, 1), (0, 0, 255, 255))
    img.save(path)
    out = load_image(path)
    assert out.getpixel((0, 0)) == (255, 255, 255)
    assert out.getpixel((1, 1)) == (0, 0, 255)


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, g, b = load_image(path).getpixel((4, 4))
    assert r > 200 and g < 50 and b < 50


def test_palette_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 4), 0)
    img.putpalette([10, 20, 30] + [200, 0, 0] * 255)
    img.info["transparency"] = 0
    img.save(path, transparency=0)
    assert load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_decompression_bomb_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("1", (4000, 3000)).save(path)  # 12 Mpx, tiny file
    with pytest.raises(ImageFileError, match=r"bomb.png.*too large.*decompression bomb"):
        load_image(path, max_pixels=1_000_000)
    assert load_image(path).size == (4000, 3000)  # under the default limit it opens


def test_not_an_image_names_file_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo")
    with pytest.raises(ImageFileError, match=r"notes\.jpg.*not an image"):
        load_image(path)


def test_truncated_image(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    good = tmp_path / "good.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(good, quality=95)
    path.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageFileError, match="cut.jpg"):
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageFileError, match="does not exist"):
        load_image(tmp_path / "nope.png")


def test_min_side_decodes_big_jpeg_2000_with_fewer_levels(tmp_path: Path) -> None:
    path = tmp_path / "big.jp2"
    Image.new("RGB", (800, 600), (200, 30, 30)).save(path)
    assert load_image(path, min_side=128).size == (200, 150)  # two levels skipped: 1/4, short side still >= 128
    assert load_image(path).size == (800, 600)


def test_min_side_decodes_big_jpegs_at_reduced_scale(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.effect_noise((1600, 1200), 40).convert("RGB").save(path)
    small = load_image(path, min_side=256)
    assert small.size == (400, 300)  # 1/4 scale: the smallest that keeps the short side >= 256
    assert load_image(path).size == (1600, 1200)
    png = tmp_path / "big.png"
    Image.new("RGB", (800, 600)).save(png)
    assert load_image(png, min_side=100).size == (800, 600)  # only JPEG decoders can skip pixels
