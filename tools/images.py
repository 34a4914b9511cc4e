"""Opening pictures that come from outside (a task file's image target, a device's screenshot, an
upload, a recorded frame): the pixel count is checked from the header, before anything is decoded —
a 48 KB PNG can claim 400 megapixels and expand to gigabytes."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from pixelpilot.tools.errors import PixelPilotError

__all__ = ["MAX_PIXELS", "PictureError", "open_picture"]

MAX_PIXELS = 50_000_000
"""The largest picture decoded (an 8K screen is 33 megapixels)."""


class PictureError(PixelPilotError):
    """A picture could not be used: not a picture, or (``too_large``) larger than :data:`MAX_PIXELS`."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def open_picture(
    source: bytes | str | os.PathLike[str], *, what: str, max_pixels: int = MAX_PIXELS
) -> Image.Image:
    """Decode ``source`` (bytes or a path) as an RGB image; ``what`` names it in errors."""
    try:
        with warnings.catch_warnings():  # Pillow warns past 89 megapixels; the limit below is ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
        w, h = img.size
        if w * h > max_pixels:
            raise PictureError(
                f"{what} is {w}x{h} ({w * h / 1e6:.0f} megapixels); pictures are limited to "
                f"{max_pixels / 1e6:.0f} megapixels",
                too_large=True,
            )
        img.load()
    except Image.DecompressionBombError as exc:
        raise PictureError(f"{what} is too large: {exc}", too_large=True) from None
    except FileNotFoundError:
        raise PictureError(f"{what}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PictureError(f"{what} is not a readable picture ({exc})") from None
    return img.convert("RGB") if img.mode != "RGB" else img
