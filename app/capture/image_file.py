"""Load an image file (or bytes) into an ImageInput, with a plain sentence for every bad input.

Every mode Pillow can open becomes 8-bit RGB: palette and grey images are expanded, 16-bit and
32-bit grey are scaled down, CMYK is converted, anything with transparency is composited on white
(what a transparent PNG looks like in a viewer), and the EXIF orientation of a phone photo is
applied. Extremely thin images (a 1900 x 30 toolbar strip) are accepted: the backends pad them.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core.errors import InputError
from app.core.types import Bounds, ImageInput

#: Smallest side we accept: below this there is nothing to read or describe.
MIN_SIDE = 8
#: Largest image we decode (pixels). 8K (7680 x 4320, 33 million) fits with room to spare; a
#: "decompression bomb" (a tiny file that claims a gigantic image) does not.
MAX_PIXELS = 80_000_000


def _too_small(width: int, height: int) -> InputError:
    return InputError(
        f"The image is only {width} by {height} pixels, too small to describe. "
        f"It needs to be at least {MIN_SIDE} pixels on each side."
    )


def _to_rgb(img):
    """Any Pillow mode to 8-bit RGB, compositing transparency on white."""
    import numpy as np
    from PIL import Image

    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    elif mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        if not finite.all():  # NaN or infinite samples in a float image: black, and bright for +inf
            top_finite = float(arr[finite].max()) if finite.any() else 0.0
            arr = np.nan_to_num(arr, nan=0.0, posinf=max(top_finite, 1.0), neginf=0.0)
        peak = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16") or 255.0 < peak <= 65535.0:
            top = 65535.0  # 16-bit grey, however Pillow labels it
        elif peak <= 255.0:
            top = 255.0
        else:
            top = peak
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if mode in ("LA", "La", "RGBA", "RGBa") or (mode == "RGB" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("L", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        return img.convert("RGB")
    return img.convert("RGB")


def _decode(opener, name: str):
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with opener() as img:
            # The header's size is checked before any pixel is decoded: a small file that claims a
            # gigantic image (a decompression bomb) is refused here, before it can fill memory.
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise InputError(
                    f"The image claims to be {width} by {height} pixels, which is too large to open "
                    "safely. Images up to 8K are fine."
                )
            if width < 1 or height < 1:
                raise InputError(f"{name} has no pixels.")
            img.load()
            img = ImageOps.exif_transpose(img)
            width, height = img.size
            if min(width, height) < MIN_SIDE:
                raise _too_small(width, height)
            pixels = np.asarray(_to_rgb(img), dtype=np.uint8)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(
            "The image is too large to open safely. Images up to 8K are fine.", detail=str(exc)
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{name} is not an image Sightline can open.", detail=str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        # Truncated or corrupt data: Pillow raises a variety of these while decoding.
        raise InputError(f"{name} is damaged or incomplete and cannot be opened.", detail=str(exc)) from exc
    except MemoryError as exc:
        raise InputError("The image is too large to open on this computer.") from exc
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InputError(f"{name} has a colour format Sightline cannot read.")
    return pixels


def load_image(path: str | os.PathLike) -> ImageInput:
    """Open an image file as an RGB ImageInput (source "file"); InputError with a sentence if not."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"There is no file called {p.name} at {p.parent}.")
    if p.is_dir():
        raise InputError(
            f"The path {p.name or p} is a folder, not an image file. Choose an image file inside it."
        )
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"The file {p.name} cannot be read.", detail=str(exc)) from exc
    if size == 0:
        raise InputError(f"The image file {p.name} is empty.")
    from PIL import Image

    def opener():
        try:
            return Image.open(p)
        except PermissionError as exc:
            raise InputError(f"Sightline is not allowed to read {p.name}.", detail=str(exc)) from exc

    pixels = _decode(opener, f"The file {p.name}")
    return ImageInput(pixels, "file", Bounds(0, 0, int(pixels.shape[1]), int(pixels.shape[0])))
