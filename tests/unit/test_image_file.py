"""Image files: every bad input is a plain sentence, every good one becomes 8-bit RGB."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.capture.image_file import MIN_SIDE, load_image
from app.core.errors import InputError


def _save(img: Image.Image, path, fmt: str = "PNG", **kw):
    img.save(path, fmt, **kw)
    return path


def _sentence(exc: InputError) -> str:
    s = exc.sentence
    assert s and s[0].isupper() and s.endswith(".")
    assert "Traceback" not in s and "Errno" not in s and "PIL" not in s
    return s


# --- bad input ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(tmp_path / "nothere.png")
    assert "no file called nothere.png" in _sentence(err.value)


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError) as err:
        load_image(tmp_path / "empty.png")
    assert "empty" in _sentence(err.value)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(InputError) as err:
        load_image(tmp_path)
    assert "folder" in _sentence(err.value)


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n" * 20, bytes(range(256)) * 8, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"],
    ids=["text", "noise", "pdf"],
)
def test_not_an_image(tmp_path, content):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert "not an image" in _sentence(err.value)


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("GIF", "gif"), ("WEBP", "webp")])
def test_truncated_file(tmp_path, fmt, ext):
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError) as err:
        load_image(path)
    assert "damaged or incomplete" in _sentence(err.value) or "not an image" in err.value.sentence


def test_corrupt_middle(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 200, 30)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:90] = b"\x00" * 30  # inside IDAT: the checksum no longer matches
    path = tmp_path / "bad.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as err:
        load_image(path)
    _sentence(err.value)


def test_one_pixel_is_too_small_and_says_the_minimum(tmp_path):
    path = _save(Image.new("RGB", (1, 1)), tmp_path / "dot.png")
    with pytest.raises(InputError) as err:
        load_image(path)
    s = _sentence(err.value)
    assert "1 by 1" in s and "too small" in s and f"at least {MIN_SIDE} pixels" in s


def test_thin_strip_is_too_small_below_the_minimum(tmp_path):
    path = _save(Image.new("RGB", (1900, MIN_SIDE - 1)), tmp_path / "line.png")
    with pytest.raises(InputError, match="too small"):
        load_image(path)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(60_000, 60_000))  # 3.6 billion pixels claimed in 100 bytes
    assert path.stat().st_size < 200
    with pytest.raises(InputError) as err:
        load_image(path)
    assert "too large" in _sentence(err.value)


# --- good input ---------------------------------------------------------------------------------


def test_thin_toolbar_is_accepted(tmp_path):
    path = _save(Image.new("RGB", (1900, 30), (200, 210, 220)), tmp_path / "toolbar.png")
    image = load_image(path)
    assert (image.width, image.height) == (1900, 30)
    assert image.source == "file"
    assert (image.bounds.width, image.bounds.height) == (1900, 30)
    assert not image.pixels.flags.writeable


def test_8k_is_accepted(tmp_path):
    img = Image.new("RGB", (7680, 4320), (250, 250, 250))
    img.paste((255, 0, 0), (7000, 4000, 7100, 4100))
    path = _save(img, tmp_path / "8k.png", compress_level=1)
    image = load_image(path)
    assert (image.width, image.height) == (7680, 4320)
    assert tuple(image.pixels[4050, 7050]) == (255, 0, 0)


def _rgb(path) -> np.ndarray:
    image = load_image(path)
    assert image.pixels.dtype == np.uint8 and image.pixels.shape[2] == 3
    return image.pixels


def test_grey_L(tmp_path):
    px = _rgb(_save(Image.new("L", (20, 20), 100), tmp_path / "l.png"))
    assert tuple(px[5, 5]) == (100, 100, 100)


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    img = Image.new("LA", (20, 20), (0, 0))  # fully transparent black
    img.putpixel((3, 3), (0, 255))  # one opaque black pixel
    px = _rgb(_save(img, tmp_path / "la.png"))
    assert tuple(px[10, 10]) == (255, 255, 255)
    assert tuple(px[3, 3]) == (0, 0, 0)


def test_rgba_half_transparent_red_on_white(tmp_path):
    img = Image.new("RGBA", (20, 20), (255, 0, 0, 128))
    px = _rgb(_save(img, tmp_path / "rgba.png"))
    r, g, b = (int(v) for v in px[5, 5])
    assert r == 255 and 120 <= g <= 135 and g == b  # pink: half red over white


def test_palette_with_and_without_transparency(tmp_path):
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 255] + [0, 255, 0] * 255)
    img.putpixel((2, 2), 1)
    px = _rgb(_save(img, tmp_path / "p.png"))
    assert tuple(px[10, 10]) == (0, 0, 255) and tuple(px[2, 2]) == (0, 255, 0)
    px = _rgb(_save(img, tmp_path / "p.gif", "GIF", transparency=0))
    assert tuple(px[10, 10]) == (255, 255, 255)  # the transparent colour shows as white
    assert tuple(px[2, 2]) == (0, 255, 0)


def test_cmyk_jpeg(tmp_path):
    img = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red in CMYK
    px = _rgb(_save(img, tmp_path / "cmyk.jpg", "JPEG", quality=95))
    r, g, b = (int(v) for v in px[16, 16])
    assert r > 200 and g < 60 and b < 60


def test_16_bit_grey(tmp_path):
    arr = np.full((20, 20), 65535, np.uint16)
    arr[:10] = 32768
    img = Image.fromarray(arr)
    assert img.mode.startswith("I")
    px = _rgb(_save(img, tmp_path / "g16.png"))
    assert tuple(px[15, 5]) == (255, 255, 255)
    assert 126 <= int(px[5, 5, 0]) <= 129


def test_one_bit(tmp_path):
    img = Image.new("1", (20, 20), 1)
    img.putpixel((4, 4), 0)
    px = _rgb(_save(img, tmp_path / "bw.png"))
    assert tuple(px[10, 10]) == (255, 255, 255) and tuple(px[4, 4]) == (0, 0, 0)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 10, 10))  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = _save(img, tmp_path / "phone.jpg", "JPEG", exif=exif, quality=95)
    image = load_image(path)
    assert (image.width, image.height) == (30, 60)  # shown upright: portrait
    r, g, b = (int(v) for v in image.pixels[3, 26])  # stored top-left is now top-right
    assert r > 200 and g < 60 and b < 60


def test_float_tiff_with_nan_and_infinity_opens_without_a_warning(tmp_path):
    # A scientific float TIFF may hold NaN and infinities: they become black (and bright for +inf),
    # and no RuntimeWarning (which names the file's path) reaches the terminal.
    import warnings

    data = np.linspace(0, 200, 64 * 48, dtype=np.float32).reshape(48, 64)
    data[3, 3] = np.nan
    data[5, 5] = np.inf
    data[7, 7] = -np.inf
    path = _save(Image.fromarray(data, "F"), tmp_path / "nan.tif", "TIFF")
    all_nan = _save(Image.fromarray(np.full((48, 64), np.nan, np.float32), "F"), tmp_path / "all.tif", "TIFF")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = load_image(path)
        blank = load_image(all_nan)
    assert image.pixels[3, 3].tolist() == [0, 0, 0] and image.pixels[7, 7].tolist() == [0, 0, 0]
    assert image.pixels[5, 5, 0] >= image.pixels[47, 63, 0] > 0  # +inf is as bright as the brightest
    assert int(blank.pixels.max()) == 0
