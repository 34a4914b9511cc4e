"""The driver seam: where screenshots come from and where actions go.

A driver is small: ``observe()``, ``perform(action)``, ``capabilities``, ``close()``. Optional abilities
(opening URLs, element-level helpers, settling) are separate protocols checked with ``isinstance``.
Backend exceptions are translated into ``tools.errors.DriverError`` at this boundary; drivers import
nothing from ``agent``.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from tools.actions import Action, Point

__all__ = [
    "Box",
    "Driver",
    "ElementDriver",
    "Navigable",
    "Screen",
    "Settling",
    "UINode",
]


@dataclass(frozen=True)
class Box:
    """A rectangle in screenshot pixels."""

    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> Point:
        return (round(self.x + self.width / 2), round(self.y + self.height / 2))

    def contains(self, p: Point) -> bool:
        return self.x <= p[0] <= self.x + self.width and self.y <= p[1] <= self.y + self.height

    def as_list(self) -> list[float]:
        return [round(self.x, 1), round(self.y, 1), round(self.width, 1), round(self.height, 1)]


@dataclass(frozen=True)
class UINode:
    """One element of a UI tree (DOM/ARIA node, uiautomator node), box in screenshot pixels."""

    ref: str
    role: str
    name: str
    box: Box
    text: str = ""
    tag: str = ""
    placeholder: str = ""
    value: str | None = None
    checked: bool | None = None
    interactive: bool = False
    options: tuple[str, ...] = ()
    """For a dropdown: the visible option labels."""

    def describe(self) -> str:
        label = self.name or self.text or self.placeholder
        x, y, w, h = self.box.as_list()
        return f'{self.role} "{label}" at ({x:.0f},{y:.0f} {w:.0f}x{h:.0f})'


@dataclass
class Screen:
    """One observation of the screen.

    ``scale`` is image pixels per driver input unit: 2.0 on a HiDPI page whose CSS pixels are half
    the screenshot's. ``image_bytes`` holds the encoded frame as the driver produced it (PNG or
    JPEG), so it can be stored without re-encoding.
    """

    image_bytes: bytes
    width: int
    height: int
    scale: float = 1.0
    tree: list[UINode] | None = None
    timestamp: float = field(default_factory=time.time)
    format: str = "png"
    _image: Image.Image | None = field(default=None, repr=False)

    @property
    def image(self) -> Image.Image:
        """The frame as an RGB PIL image (decoded on first use)."""
        if self._image is None:
            img = Image.open(io.BytesIO(self.image_bytes))
            img.load()
            self._image = img.convert("RGB") if img.mode != "RGB" else img
        return self._image

    @classmethod
    def from_image(
        cls, image: Image.Image, *, scale: float = 1.0, tree: list[UINode] | None = None
    ) -> Screen:
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        return cls(buf.getvalue(), image.width, image.height, scale, tree, _image=rgb)


@runtime_checkable
class Driver(Protocol):
    """What every driver provides."""

    name: str
    capabilities: frozenset[str]

    def observe(self, *, tree: bool = True) -> Screen: ...

    def perform(self, action: Action) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Driver: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Navigable(Protocol):
    """A driver that can open a URL (browser)."""

    def goto(self, url: str, *, timeout: float = 30.0) -> None: ...


@runtime_checkable
class ElementDriver(Protocol):
    """A driver with a UI tree that can help act on elements."""

    def hit_point(self, node: UINode) -> Point | None:
        """A point inside ``node`` that really hits it (not covered), or None when fully covered."""
        ...

    def select_option(self, node: UINode, label: str) -> None: ...

    def ui_tree(self) -> list[UINode]:
        """The current UI tree alone, without a screenshot (cheap polling)."""
        ...


@runtime_checkable
class Settling(Protocol):
    """A driver that can wait, after an action, until the screen stops changing."""

    def settle(self, *, timeout: float = 3.0, quiet_ms: float = 60) -> dict[str, Any]:
        """Wait until nothing changed for ``quiet_ms``; returns facts such as ``{"changed": bool, "waited_ms": float}``."""
        ...
