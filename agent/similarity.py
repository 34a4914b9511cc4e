"""How alike two frames are: the structural similarity used by replay and the cache."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .memory import StepRecord

__all__ = ["acted_region", "grey", "similarity"]

Frame = Image.Image | np.ndarray
"""A PIL image, or a greyscale (H, W) uint8 array as ``Screen.grey`` and ``grey`` give."""


def grey(frame: Frame) -> np.ndarray:
    """The frame as a greyscale uint8 array."""
    if isinstance(frame, np.ndarray):
        if frame.ndim == 2:
            return frame
        import cv2

        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    return np.asarray(frame.convert("L"))


def similarity(a: Frame, b: Frame, *, width: int = 320) -> float:
    """Mean SSIM of two frames in grey, both scaled to ``width`` pixels wide (1.0 = identical)."""
    import cv2

    ga, gb = grey(a), grey(b)
    h = max(8, round(ga.shape[0] * width / max(ga.shape[1], 1)))
    x = cv2.resize(ga, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    y = cv2.resize(gb, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    blur = lambda m: cv2.GaussianBlur(m, (7, 7), 1.5)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim.mean())


def acted_region(step: StepRecord, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The part of the frame the step acted on: its element's box, else a patch around its point."""
    w, h = size
    if step.box:
        x, y, bw, bh = step.box
        pad = 6
        box = (x - pad, y - pad, x + bw + pad, y + bh + pad)
    elif step.point:
        px, py = step.point
        box = (px - 60, py - 30, px + 60, py + 30)
    else:
        return None
    x0, y0, x1, y1 = (
        max(0, round(box[0])),
        max(0, round(box[1])),
        min(w, round(box[2])),
        min(h, round(box[3])),
    )
    return (x0, y0, x1, y1) if x1 - x0 >= 8 and y1 - y0 >= 8 else None
