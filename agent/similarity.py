"""How alike two frames are: the structural similarity used by replay and the cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from pixelpilot.agent.memory import StepRecord

__all__ = ["Prepared", "acted_region", "grey", "prepare", "similarity"]

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


@dataclass(frozen=True)
class Prepared:
    """One side of a comparison made ahead: the frame scaled to ``width`` and its local means and
    variances (the cache prepares its recorded frames in the background)."""

    x: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    width: int


_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _blur(m: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(m, (7, 7), 1.5)


def _scaled(frame: Frame, width: int, height: int | None = None) -> np.ndarray:
    import cv2

    g = grey(frame)
    h = height or max(8, round(g.shape[0] * width / max(g.shape[1], 1)))
    return cv2.resize(g, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32)


def prepare(frame: Frame, *, width: int = 320) -> Prepared:
    x = _scaled(frame, width)
    mx = _blur(x)
    return Prepared(x, mx, _blur(x * x) - mx * mx, width)


def similarity(a: Frame | Prepared, b: Frame, *, width: int = 320) -> float:
    """Mean SSIM of two frames in grey, both scaled to ``width`` pixels wide (1.0 = identical)."""
    ref = a if isinstance(a, Prepared) else prepare(a, width=width)
    y = _scaled(b, ref.width, ref.x.shape[0])
    my = _blur(y)
    syy, sxy = _blur(y * y) - my * my, _blur(ref.x * y) - ref.mean * my
    mx, sxx = ref.mean, ref.var
    ssim = ((2 * mx * my + _C1) * (2 * sxy + _C2)) / ((mx * mx + my * my + _C1) * (sxx + syy + _C2))
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
