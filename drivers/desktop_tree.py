"""The desktop driver's UI tree: the launched applications' widgets read over AT-SPI, the widgets a
scrolled panel hides, and scrolling them into view. :class:`DesktopTree` is that part of
:class:`~pixelpilot.drivers.desktop.DesktopDriver`."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from typing import TYPE_CHECKING, Any

from pixelpilot.drivers.atspi import AtspiTree, shown_parts, ui_nodes
from pixelpilot.drivers.base import UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

__all__ = ["SCROLL_PX_PER_CLICK", "DesktopTree"]

log = logging.getLogger(__name__)

SCROLL_PX_PER_CLICK = 100
"""Screen pixels one wheel click stands for (Scroll actions are in pixels)."""


class DesktopTree:
    """Mixed into :class:`~pixelpilot.drivers.desktop.DesktopDriver` (which sets these up)."""

    display: str
    monitor: dict[str, int]
    scale: float
    capabilities: frozenset[str]
    _tree: AtspiTree | None
    _session_bus: str | None
    _keys: dict[str, tuple[str, str]]
    _apps: list[tuple[list[str], subprocess.Popen[bytes], bool]]

    @property
    def _tree_failed(self) -> bool:
        return "ui_tree" not in self.capabilities

    if TYPE_CHECKING:  # the driver's own

        def _boundary(self, what: str) -> contextlib.AbstractContextManager[None]: ...
        def perform(self, action: A.Action) -> None: ...
        def settle(self, *, timeout: float = 3.0, quiet_ms: float = 60) -> dict[str, Any]: ...

    def _atspi(self) -> AtspiTree | None:
        if self._tree is None and not self._tree_failed:
            assert self._session_bus is not None
            try:
                self._tree = AtspiTree(self._session_bus)
            except DriverError as exc:
                log.warning("no accessibility tree on %s (%s); text is found by OCR", self.display, exc)
                self.capabilities -= {"ui_tree"}
        return self._tree

    def ui_tree(self) -> list[UINode]:
        """The launched applications' widgets (every application on the display when none was launched
        here), read over AT-SPI: boxes in screenshot pixels, fields' text as their value."""
        return self._read_tree(self._accessible_roots())

    def _read_tree(self, roots: list[tuple[str, str]], *, beyond: bool = False) -> list[UINode]:
        tree = self._atspi()
        if tree is None or not roots:
            return []
        with self._boundary("read the accessibility tree"):
            nodes = tree.read(roots)
        self._keys = {}
        return ui_nodes(nodes, self.monitor, self.scale, beyond=beyond, keys=self._keys)

    def tree_beyond_view(self) -> list[UINode]:
        """The widgets, also those their scrolled containers hide (with their whole boxes)."""
        return self._read_tree(self._accessible_roots(), beyond=True)

    def scroll_into_view(self, node: UINode) -> None:
        """Have the toolkit show ``node`` (from :meth:`tree_beyond_view`): AT-SPI's ScrollTo where the
        toolkit has it (GTK 3 and Qt before 6.5 do not), else turn the mouse wheel over the panel
        that hides it, as a user would, until the widget is in view."""
        key = self._keys.get(node.ref)
        tree = self._atspi()
        if key is None or tree is None:
            raise DriverError(f"{node.describe()} is not in the accessibility tree any more")
        with self._boundary("scroll a widget into view"):
            if tree.scroll_to(*key):
                self.settle()
                return
            for _ in range(40):
                nodes = tree.read(self._accessible_roots())
                me = next((n for n in nodes if (n.bus, n.path) == key), None)
                if me is None or me.extents is None:
                    raise DriverError(f"{node.describe()} is not in the accessibility tree any more")
                parent = next((n for n in nodes if key in n.children), None)
                shown = shown_parts(nodes)
                panel = shown.get((parent.bus, parent.path)) if parent is not None else None
                x, y, w, h = me.extents
                if panel is None or panel[2] - panel[0] < 1 or panel[3] - panel[1] < 1:
                    raise DriverError(f"{node.describe()} is hidden and no panel around it can scroll")
                dy = (y + h - panel[3]) if y + h > panel[3] else (y - panel[1]) if y < panel[1] else 0
                dx = (x + w - panel[2]) if x + w > panel[2] else (x - panel[0]) if x < panel[0] else 0
                if not dx and not dy:
                    return
                mx = (panel[0] + panel[2]) / 2 - self.monitor["left"]
                my = (panel[1] + panel[3]) / 2 - self.monitor["top"]
                step = SCROLL_PX_PER_CLICK * self.scale
                self.perform(
                    A.Scroll(
                        at=(round(mx * self.scale), round(my * self.scale)),
                        dx=round(max(-step, min(step, dx * self.scale))),
                        dy=round(max(-step, min(step, dy * self.scale))),
                    )
                )
                self.settle(quiet_ms=40)
            raise DriverError(f"{node.describe()} did not come into view after 40 turns of the wheel")

    def _accessible_roots(self) -> list[tuple[str, str]]:
        """The application objects of the launched applications (of every one on the display when none
        was launched here) that publish an accessibility tree."""
        tree = self._atspi()
        if tree is None:
            return []
        sessions = {proc.pid for _, proc, _ in self._apps if proc.poll() is None}
        roots = []
        with self._boundary("list the accessible applications"):
            for bus, path, pid in tree.applications():
                with contextlib.suppress(OSError, TypeError):
                    if not sessions or os.getsid(pid) in sessions:  # type: ignore[arg-type]
                        roots.append((bus, path))
        return roots

    def hit_point(self, node: UINode) -> A.Point | None:
        """The middle of the widget (the accessibility tree says where it is, not what covers it)."""
        return node.box.center

    def select_option(self, node: UINode, label: str) -> None:
        raise DriverError("a desktop dropdown is chosen from by clicking its option (no options list)")

    def keyboard_focus(self) -> UINode | None:
        """The widget with the keyboard focus, from the accessibility tree."""
        if self._tree_failed:
            return None
        return next((n for n in self.ui_tree() if n.focused and n.role != "window"), None)
