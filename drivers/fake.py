"""An in-memory driver for unit tests and examples: a few widgets drawn with Pillow.

It behaves like a tiny GUI: clicks press buttons, focus text boxes and toggle checkboxes; typing
goes into the focused box; every performed action is kept in ``performed``. Use it to test code
written against :class:`drivers.base.Driver` without a browser or display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from pixelpilot.drivers.base import Box, Screen, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

__all__ = ["FakeDriver", "FakeWidget"]


@dataclass
class FakeWidget:
    name: str
    box: tuple[int, int, int, int]
    """x, y, width, height in screen pixels."""
    role: str = "button"
    value: str = ""
    checked: bool = False
    options: tuple[str, ...] = ()
    placeholder: str = ""
    visible: bool = True
    on_click: Callable[[FakeDriver], None] | None = None
    clicks: int = 0


@dataclass
class FakeDriver:
    """A driver whose screen is a list of :class:`FakeWidget`.

    >>> d = FakeDriver([FakeWidget("OK", (10, 10, 80, 30))])
    >>> d.perform(A.Click(at=(50, 25))); d.widget("OK").clicks
    1
    """

    widgets: list[FakeWidget] = field(default_factory=list)
    size: tuple[int, int] = (640, 400)
    scale: float = 1.0
    with_tree: bool = True
    name: str = "fake"
    performed: list[A.Action] = field(default_factory=list)
    focused: FakeWidget | None = None
    closed: bool = False
    fail_next: str | None = None
    """Set to a message to make the next observe/perform raise ``DriverError`` (simulates a crash)."""
    _changed: bool = False

    capabilities = frozenset({"screenshot", "ui_tree", "keyboard", "mouse", "select", "settle"})

    def widget(self, name: str) -> FakeWidget:
        for w in self.widgets:
            if w.name == name:
                return w
        raise KeyError(name)

    def add(self, widgets: Iterable[FakeWidget]) -> None:
        self.widgets.extend(widgets)
        self._changed = True

    # -- Driver ----------------------------------------------------------------------------------
    def _check(self) -> None:
        if self.closed:
            raise DriverError("the fake driver is closed")
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise DriverError(msg)

    def observe(self, *, tree: bool = True) -> Screen:
        self._check()
        img = Image.new("RGB", self.size, "white")
        draw = ImageDraw.Draw(img)
        for w in self.widgets:
            if not w.visible:
                continue
            x, y, bw, bh = w.box
            fill = {"button": "#dde6ff", "textbox": "#ffffff", "checkbox": "#f3f3f3"}.get(w.role, "white")
            draw.rectangle([x, y, x + bw, y + bh], fill=fill, outline="#333333" if w.role != "text" else None)
            label = w.value or w.placeholder if w.role == "textbox" else w.name
            if w.role == "checkbox":
                label = ("[x] " if w.checked else "[ ] ") + w.name
            draw.text((x + 6, y + max(2, bh // 2 - 6)), label, fill="black")
        return Screen.from_image(
            img, scale=self.scale, tree=self._tree() if tree and self.with_tree else None
        )

    def ui_tree(self) -> list[UINode]:
        self._check()
        return self._tree()

    def keyboard_focus(self) -> UINode | None:
        self._check()
        return next((n for n in self._tree() if n.focused), None)

    def _tree(self) -> list[UINode]:
        return [
            UINode(
                ref=str(i),
                role=w.role,
                name=w.name,
                text=w.name if w.role in ("button", "text") else "",
                box=Box(*w.box),
                value=w.value if w.role in ("textbox", "combobox") else None,
                checked=w.checked if w.role == "checkbox" else None,
                interactive=w.role != "text",
                options=w.options,
                placeholder=w.placeholder,
                focused=w is self.focused,
            )
            for i, w in enumerate(self.widgets)
            if w.visible
        ]

    def _at(self, p: A.Point) -> FakeWidget | None:
        for w in reversed(self.widgets):
            x, y, bw, bh = w.box
            if w.visible and x <= p[0] <= x + bw and y <= p[1] <= y + bh:
                return w
        return None

    def perform(self, action: A.Action) -> None:
        self._check()
        self.performed.append(action)
        match action:
            case A.Click() | A.DoubleClick() | A.TripleClick():
                w = self._at(action.at)
                if w is None:
                    return
                w.clicks += 1
                self._changed |= w.role != "text" or w.on_click is not None
                if w.role == "textbox":
                    self.focused = w
                elif w.role == "checkbox":
                    w.checked = not w.checked
                if w.on_click is not None:
                    w.on_click(self)
            case A.Type():
                if self.focused is not None:
                    self.focused.value += action.text
                    self._changed = True
            case A.Key(keys=keys) if [k.lower() for k in keys] in (["ctrl", "a"], ["backspace"]):
                if self.focused is not None and keys[-1].lower() == "backspace":
                    self.focused.value = self.focused.value[:-1]
                    self._changed = True
            case _:
                pass

    def hit_point(self, node: UINode) -> A.Point | None:
        c = node.box.center
        hit = self._at(c)
        return c if hit is not None and hit.name == node.name else None

    def select_option(self, node: UINode, label: str) -> None:
        w = self.widgets[int(node.ref)]
        if label not in w.options:
            raise DriverError(f"{label!r} is not an option of {w.name!r}")
        w.value = label
        self._changed = True

    def settle(self, *, timeout: float = 3.0, quiet_ms: float = 0) -> dict[str, Any]:
        changed, self._changed = self._changed, False
        return {"changed": changed, "waited_ms": 0.0}

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
