"""What a model's action landed on, in the locator language: recorded with each model-decided action
on a driver with a UI tree, so that ``pixelpilot export`` can write the step a script would take.

For a point, the element under it (the innermost interactive one on the top layer) and the shortest
target that finds it *alone* among everything on the screen — its text, then its role and name, its
placeholder, title or test id, and last its role and name with ``nth``. For typing, the field that had
the keyboard focus. A target is recorded only when the locator chain resolves it to that element now
(checked against the same tree); otherwise only the element's description is kept.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from typing import Any

from pixelpilot.agent.errors import PixelPilotError
from pixelpilot.agent.query import Query, resolve
from pixelpilot.drivers.base import ElementDriver, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

__all__ = ["action_elements", "element_at", "target_for"]

_LONGEST = 80
"""A text longer than this is no target a person would write."""


def _inside(n: UINode, x: float, y: float) -> bool:
    b = n.box
    return b.width > 0 and b.height > 0 and b.x <= x <= b.x + b.width and b.y <= y <= b.y + b.height


def node_at(tree: Sequence[UINode], point: tuple[float, float]) -> UINode | None:
    """The element a click at ``point`` lands on: the smallest interactive one there on the top
    layer (an open menu over the window), else the smallest with a text."""
    under = [n for n in tree if _inside(n, *point)]
    if not under:
        return None
    top = max(n.layer for n in under)
    under = [n for n in under if n.layer == top]
    pool = [n for n in under if n.interactive] or [n for n in under if n.name or n.text]
    return min(pool, key=lambda n: n.box.width * n.box.height) if pool else None


def _writable(text: str) -> bool:
    return bool(text.strip()) and len(text) <= _LONGEST and not re.match(r"^/.+/[imsx]*$", text)


def target_for(
    tree: Sequence[UINode], node: UINode, point: tuple[float, float]
) -> str | dict[str, Any] | None:
    """The shortest target that the locator chain resolves, on ``tree``, to ``node`` alone (or to one
    element that holds ``point``)."""
    label = (node.name or node.text or "").strip()
    forms: list[str | dict[str, Any]] = []
    if _writable(label):
        forms.append(label)
        if node.role:
            forms += [{"role": node.role, "name": label}, {"role": node.role, "name": label, "exact": True}]
    for key, value in (("placeholder", node.placeholder), ("title", node.title), ("test_id", node.test_id)):
        if _writable(value or ""):
            forms.append({key: value})
    found: list[tuple[str | dict[str, Any], list[UINode]]] = []
    for form in forms:
        found.append((form, _hits(tree, form)))
        hits = found[-1][1]
        if len(hits) == 1 and _same(hits[0], node, point):
            return form
    for form, hits in found:  # several match: which one, in reading order (a text takes no nth)
        if isinstance(form, dict):
            for i, hit in enumerate(hits):
                if _same(hit, node, point):
                    return {**form, "nth": i + 1}
    return None


def _hits(tree: Sequence[UINode], form: str | dict[str, Any]) -> list[UINode]:
    try:
        return resolve(Query.of(form), tree, act=True)
    except PixelPilotError:
        return []


def _same(hit: UINode, node: UINode, point: tuple[float, float]) -> bool:
    return hit is node or hit.ref == node.ref or _inside(hit, *point)


def element_at(tree: Sequence[UINode], point: tuple[float, float]) -> dict[str, Any] | None:
    """The record of what is at ``point``: the element's description, role, name, box and (when one
    finds it alone) ``target``."""
    node = node_at(tree, point)
    return None if node is None else _record(tree, node, point)


def _record(tree: Sequence[UINode], node: UINode, point: tuple[float, float]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "element": node.describe(),
        "role": node.role,
        "name": node.name or node.text or node.placeholder,
        "box": [round(v, 1) for v in node.box.as_list()],
    }
    target = target_for(tree, node, point)
    if target is not None:
        out["target"] = target
    return out


def _focused(tree: Sequence[UINode]) -> dict[str, Any] | None:
    focused = [n for n in tree if n.focused]
    if not focused:
        return None
    node = min(focused, key=lambda n: n.box.width * n.box.height)
    return _record(tree, node, node.box.center)


def action_elements(driver: Any, action: A.Action) -> dict[str, Any] | None:
    """What ``action`` is about to act on, read from the driver's UI tree (None without one): the
    element at its point; for typing, the focused field; for a drag, both ends."""
    if not isinstance(driver, ElementDriver):
        return None
    tree: list[UINode] | None = None
    with contextlib.suppress(DriverError, PixelPilotError):
        tree = driver.ui_tree()
    if not tree:
        return None
    if isinstance(action, A.Type):
        return _focused(tree)
    if isinstance(action, A.Drag):
        ends = {
            "from": element_at(tree, action.start) if action.start is not None else None,
            "to": element_at(tree, action.end),
        }
        return ends if any(ends.values()) else None
    if action.point is not None:
        return element_at(tree, action.point)
    return None
