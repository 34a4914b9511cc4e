"""Image targets: find a small picture (a button cut from a screenshot) on the screen with OpenCV."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pixelpilot.tools.errors import DriverUnavailable
from pixelpilot.tools.images import open_picture

__all__ = ["TemplateMatch", "find_template", "load_template"]


@dataclass(frozen=True)
class TemplateMatch:
    box: tuple[int, int, int, int]
    """x, y, width, height in screen-image pixels."""
    score: float

    @property
    def center(self) -> tuple[int, int]:
        x, y, w, h = self.box
        return (x + w // 2, y + h // 2)


def load_template(path: str | Path) -> Image.Image:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no image file at {p}")
    return open_picture(p, what=f"the image target {p}")


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax2, bx2) - max(ax1, bx1)), max(0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def find_template(
    image: Image.Image,
    template: Image.Image,
    *,
    threshold: float = 0.9,
    scales: Sequence[float] = (1.0,),
    limit: int = 20,
) -> list[TemplateMatch]:
    """Places where ``template`` appears in ``image`` (grey-level normalised correlation ≥ ``threshold``),
    best first, overlapping hits merged."""
    try:
        import cv2
    except ImportError as exc:
        raise DriverUnavailable(
            "image targets need OpenCV", install="pip install opencv-python-headless"
        ) from exc
    hay = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
    found: list[TemplateMatch] = []
    for s in scales:
        tpl = (
            template
            if s == 1
            else template.resize((max(1, round(template.width * s)), max(1, round(template.height * s))))
        )
        needle = cv2.cvtColor(np.asarray(tpl.convert("RGB")), cv2.COLOR_RGB2GRAY)
        th, tw = needle.shape
        if th > hay.shape[0] or tw > hay.shape[1]:
            continue
        if float(needle.std()) < 1e-3:  # a flat template matches everywhere: refuse rather than guess
            continue
        res = cv2.matchTemplate(hay, needle, cv2.TM_CCOEFF_NORMED)
        ys, xs = np.where(res >= threshold)
        order = np.argsort(-res[ys, xs])[: limit * 50]
        for i in order:
            found.append(TemplateMatch((int(xs[i]), int(ys[i]), tw, th), float(res[ys[i], xs[i]])))
    found.sort(key=lambda m: -m.score)
    kept: list[TemplateMatch] = []
    for m in found:
        if all(_iou(m.box, k.box) < 0.3 for k in kept):
            kept.append(m)
        if len(kept) >= limit:
            break
    return kept
