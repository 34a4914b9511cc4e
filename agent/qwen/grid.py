"""Qwen3-VL's 0–1000 coordinate grid ↔ screenshot pixels. The only place this conversion happens."""

from __future__ import annotations

__all__ = ["OffScreen", "grid_to_pixels", "pixels_to_grid"]


class OffScreen(ValueError):
    """A grid coordinate outside the grid."""


def grid_to_pixels(point: tuple[float, float], size: tuple[int, int], divisor: int = 1000) -> tuple[int, int]:
    """Map a grid point (0..divisor) to pixels of a ``size`` (width, height) image, clamped inside it.

    ``divisor`` is 1000 for computer_use (the tool says 1000x1000) and 999 for mobile_use (999x999);
    it belongs to the model profile. A point outside ``[0, divisor]`` raises :class:`OffScreen`.
    """
    x, y = point
    if not (0 <= x <= divisor and 0 <= y <= divisor):
        raise OffScreen(f"coordinate [{x:g}, {y:g}] is outside the {divisor}x{divisor} screen")
    w, h = size
    px = min(max(round(x / divisor * w), 0), w - 1)
    py = min(max(round(y / divisor * h), 0), h - 1)
    return (px, py)


def pixels_to_grid(point: tuple[float, float], size: tuple[int, int], divisor: int = 1000) -> tuple[int, int]:
    """The inverse of :func:`grid_to_pixels` (rounded to the integer grid)."""
    w, h = size
    return (
        min(max(round(point[0] / w * divisor), 0), divisor),
        min(max(round(point[1] / h * divisor), 0), divisor),
    )
