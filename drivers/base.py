"""The driver seam: where screenshots come from and where actions go.

A driver is small: ``observe()``, ``perform(action)``, ``capabilities``, ``close()``. Optional abilities
(opening URLs, element-level helpers, settling) are separate protocols checked with ``isinstance``.
Backend exceptions are translated into ``tools.errors.DriverError`` at this boundary; drivers import
nothing from ``agent``.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from pixelpilot.tools.actions import Action, Point
from pixelpilot.tools.images import open_picture

__all__ = [
    "Box",
    "Driver",
    "ElementDriver",
    "Navigable",
    "Revealer",
    "Screen",
    "Settling",
    "UINode",
    "decode_frame",
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
    focused: bool = False
    enabled: bool = True
    """False for a disabled control (greyed out: it takes no input)."""
    title: str = ""
    """The element's title (tooltip)."""
    test_id: str = ""
    """``data-testid`` on the web, the resource id on Android."""
    inner: str | None = None
    """For a container read from a document (a row, a list item, a CSS match): all the text inside it,
    so "the row that has Alice" needs no boxes."""
    layer: int = 0
    """0: in its window; 1: in the active dialog drawn over it; 2: in an open popup menu drawn over
    both (the desktop's accessibility tree sets it). An action's target that matches on a higher
    layer wins (with a menu open, ``click: Save`` is the menu's Save, not the toolbar's behind it)."""

    def describe(self) -> str:
        label = self.name or self.text or self.placeholder
        x, y, w, h = self.box.as_list()
        return f'{self.role} "{label}" at ({x:.0f},{y:.0f} {w:.0f}x{h:.0f})'


SOURCE_DIGEST = "pixelpilot_source_sha1"
"""Attribute of a frame decoded by :attr:`Screen.image`: sha1 of the encoded bytes it came from."""


class Screen:
    """One observation of the screen.

    ``scale`` is image pixels per driver input unit: 2.0 on a HiDPI page whose CSS pixels are half
    the screenshot's. The frame is held as encoded bytes (``image_bytes``: PNG or JPEG, as the driver
    produced it, so it can be stored without re-encoding) or as an image; each is made from the
    other only when asked for.
    """

    def __init__(
        self,
        image_bytes: bytes | None,
        width: int,
        height: int,
        scale: float = 1.0,
        tree: list[UINode] | None = None,
        *,
        format: str = "png",
        image: Image.Image | None = None,
        timestamp: float | None = None,
        tree_loader: Callable[[], list[UINode]] | None = None,
    ) -> None:
        self._bytes = image_bytes
        self._image = image
        self._grey: np.ndarray | None = None
        self._digest: str | None = None
        self.width, self.height, self.scale = width, height, scale
        self._tree = tree
        self._tree_loader = tree_loader
        self.format = format
        self.timestamp = time.time() if timestamp is None else timestamp

    @property
    def tree(self) -> list[UINode] | None:
        """The UI tree, or None where the driver has none. A driver may load it on first use
        (``tree_loader``): dumping it can cost seconds on a phone."""
        if self._tree is None and self._tree_loader is not None:
            loader, self._tree_loader = self._tree_loader, None
            self._tree = loader()
        return self._tree

    @tree.setter
    def tree(self, value: list[UINode] | None) -> None:
        self._tree, self._tree_loader = value, None

    @property
    def digest(self) -> str:
        """sha1 of the encoded frame (computed once): names the frame in the run log, the loop guard
        and a model backend's caches."""
        if self._digest is None:
            self._digest = hashlib.sha1(self.image_bytes).hexdigest()
        return self._digest

    @property
    def taken(self) -> bool:
        """Whether this holds a frame (False for the placeholder of a step that took none)."""
        return bool(self._bytes) or self._image is not None

    @property
    def image_bytes(self) -> bytes:
        """The encoded frame (encoded on first use when the driver gave an image)."""
        if self._bytes is None:
            if self._image is None:
                return b""
            buf = io.BytesIO()
            if self.format == "jpeg":
                self._image.save(buf, format="JPEG", quality=85)
            else:
                self._image.save(buf, format="PNG", compress_level=1)
            self._bytes = buf.getvalue()
        return self._bytes

    @property
    def image(self) -> Image.Image:
        """The frame as an RGB PIL image (decoded on first use)."""
        if self._image is None:
            array = decode_frame(self.image_bytes, grey=False)
            if array is not None:
                self._image = Image.fromarray(array)
            else:
                self._image = open_picture(self.image_bytes, what="the screenshot")
            # names the pixels by the bytes they came from: hashing those is ~20x cheaper (a model
            # backend that caches by picture content uses it instead of hashing the pixels). An
            # attribute of this object, not ``info``: a copy, crop or drawing does not inherit it
            setattr(self._image, SOURCE_DIGEST, self.digest)
        return self._image

    @property
    def grey(self) -> np.ndarray:
        """The frame as a greyscale (H, W) uint8 array, for comparing frames (decoded on first use)."""
        if self._grey is None:
            array = None if self._image is not None else decode_frame(self.image_bytes, grey=True)
            self._grey = array if array is not None else np.asarray(self.image.convert("L"))
        return self._grey

    @classmethod
    def from_image(
        cls,
        image: Image.Image,
        *,
        scale: float = 1.0,
        tree: list[UINode] | None = None,
        format: str = "png",
        tree_loader: Callable[[], list[UINode]] | None = None,
    ) -> Screen:
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        return cls(
            None, image.width, image.height, scale, tree, format=format, image=rgb, tree_loader=tree_loader
        )

    def __repr__(self) -> str:
        nodes = (
            "tree not loaded"
            if self._tree is None and self._tree_loader
            else "no tree"
            if self._tree is None
            else f"{len(self._tree)} nodes"
        )
        return f"Screen({self.width}x{self.height}, scale={self.scale}, {nodes})"


def decode_frame(data: bytes, *, grey: bool) -> np.ndarray | None:
    """Decode PNG/JPEG bytes with OpenCV (several times faster than PIL here): RGB or grey."""
    if not data:
        return None
    import cv2

    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if array is None:
        return None
    return array if grey else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


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

    def goto(self, url: str, *, timeout: float = 30.0) -> Any:
        """Open ``url``; what comes back (if anything) says how the navigation went."""
        ...


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
class Revealer(Protocol):
    """A driver that can find elements scrolled out of view and scroll them in (a web page)."""

    def tree_beyond_view(self) -> list[UINode]:
        """The UI tree including the elements outside the view (their boxes off the screen)."""
        ...

    def scroll_into_view(self, node: UINode) -> None:
        """Scroll until ``node`` (from :meth:`tree_beyond_view`) is in view."""
        ...


@runtime_checkable
class FocusReader(Protocol):
    """A driver that can tell, without a screenshot or a whole UI tree, which element keyboard input
    goes to (a browser asks the page). A cached typing step checks it instead of taking a frame."""

    def keyboard_focus(self) -> UINode | None:
        """The element with keyboard focus, or None (nothing focused, or the page's body)."""
        ...


DialogPolicy = str | tuple[str, str | None]
"""What to do with a JavaScript dialog: "accept", "dismiss", or ("accept", text for a prompt)."""


@runtime_checkable
class DialogHandler(Protocol):
    """A driver whose pages can open dialogs (alert, confirm, prompt, beforeunload): each is answered by
    the policy and recorded, never silently."""

    def set_dialog_policy(self, policy: DialogPolicy, *, once: bool = False) -> None:
        """Answer dialogs by ``policy`` from now on, or (``once``) only the next one."""
        ...

    def take_dialogs(self) -> list[dict[str, Any]]:
        """The dialogs answered since the last call: type, message, default, what was done."""
        ...


@runtime_checkable
class Settling(Protocol):
    """A driver that can wait, after an action, until the screen stops changing."""

    def settle(self, *, timeout: float = 3.0, quiet_ms: float = 60) -> dict[str, Any]:
        """Wait until nothing changed for ``quiet_ms``; returns facts such as ``{"changed": bool, "waited_ms": float}``."""
        ...
