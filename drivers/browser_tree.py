"""The page's UI tree as the browser driver reads it, its frames included: the elements of the page and
of every visible frame (same-origin or another site, nested), boxes mapped onto the page's screenshot;
hit-testing inside a frame and through the frames around it; the frames' documents watched for an
action's effect; elements scrolled out of view found and scrolled in. :class:`PageTree` is the part of
:class:`~pixelpilot.drivers.browser.BrowserDriver` that does this."""

from __future__ import annotations

import contextlib
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

from pixelpilot.drivers.base import Box, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

__all__ = ["NEXT_FRAMES", "FrameGeometry", "PageTree", "js"]


@cache
def js(name: str) -> str:
    return resources.files("pixelpilot.drivers").joinpath("js", name).read_text("utf-8")


class FrameGeometry(NamedTuple):
    """Where a frame lies on the page, in CSS pixels: its content's origin (ox, oy) and the part of the
    page it shows (x0, y0)-(x1, y1), clipped by every frame around it and the viewport."""

    ox: float
    oy: float
    x0: float
    y0: float
    x1: float
    y1: float


_FRAME_BOX = """(e) => {
  const r = e.getBoundingClientRect(), s = getComputedStyle(e);
  if (s.visibility === 'hidden' || s.display === 'none') return null;
  const pl = parseFloat(s.paddingLeft) || 0, pt = parseFloat(s.paddingTop) || 0;
  const pr = parseFloat(s.paddingRight) || 0, pb = parseFloat(s.paddingBottom) || 0;
  return [r.left + e.clientLeft + pl, r.top + e.clientTop + pt, e.clientWidth - pl - pr, e.clientHeight - pt - pb];
}"""
"""A frame element's content box in its parent's viewport: [x, y, width, height], or null if hidden."""

NEXT_FRAMES = """() => new Promise((done) => {
  setTimeout(done, 100);
  requestAnimationFrame(() => requestAnimationFrame(done));
})"""
"""Resolves once two frames were drawn (at most 100 ms)."""

_AT_POINT = """(e, [x, y]) => {
  let hit = e.ownerDocument.elementFromPoint(x, y);
  while (hit && hit.shadowRoot) { const inner = hit.shadowRoot.elementFromPoint(x, y); if (!inner || inner === hit) break; hit = inner; }
  return hit === e;
}"""
"""Whether the element at (x, y) of its document's viewport is this frame element."""


class PageTree:
    """Mixed into :class:`~pixelpilot.drivers.browser.BrowserDriver` (which sets these up)."""

    page: Any
    scale: float
    _frame_refs: dict[int, tuple[Any, FrameGeometry]]
    _marked: list[Any]

    if TYPE_CHECKING:

        def _boundary(self, what: str) -> contextlib.AbstractContextManager[None]: ...

        def _evaluate(self, script: str, arg: Any = None) -> Any: ...

    def ui_tree(self) -> list[UINode]:
        with self._boundary("read the page's elements"):
            return self._read_tree()

    def keyboard_focus(self) -> UINode | None:
        with self._boundary("read which element has keyboard focus"):
            nodes = self._read_tree({"focused": True})
        return nodes[0] if nodes else None

    def _read_tree(self, arg: dict[str, Any] | None = None) -> list[UINode]:
        """The page's elements and, after them, those of its visible frames (same-origin or not, nested
        too), boxes mapped onto the page's screenshot and clipped to the part of the frame it shows. A
        frame's element has the ref ``"<frame>:<ref>"``; :meth:`hit_point` tests it inside its frame."""
        from playwright.sync_api import Error as PlaywrightError

        focused = bool(arg and arg.get("focused"))
        nodes = [m for m in (self._node(n, n["ref"]) for n in self._evaluate(js("tree.js"), arg)) if m]
        if (focused and not (nodes and nodes[0].tag in ("iframe", "frame"))) or (
            arg and arg.get("offscreen")
        ):
            return nodes  # the focus is not inside a frame; what is out of view: the page's own
        frames = self._child_frames()
        if not focused:
            self._frame_refs = dict(enumerate(frames))
        known = {id(f): i for i, (f, _) in self._frame_refs.items()}
        found: list[UINode] = []
        for frame, geo in frames:
            i = known.get(id(frame))
            if i is None:  # a frame that appeared since the last full read
                i = known[id(frame)] = max(self._frame_refs, default=-1) + 1
                self._frame_refs[i] = (frame, geo)
            try:
                # the innermost frame whose document has the focus holds the focused element
                if focused and not frame.evaluate("() => document.hasFocus()"):
                    continue
                raw = frame.evaluate(js("tree.js"), arg)
            except PlaywrightError:
                continue  # a frame navigating or going away meanwhile
            inner = [m for m in (self._node(n, f"{i}:{n['ref']}", geo) for n in raw) if m is not None]
            if not focused:
                found.extend(inner)
            elif inner and inner[0].tag not in ("iframe", "frame"):
                found = inner[:1]
        return found if focused else [*nodes, *found]

    def css_nodes(self, selector: str, *, offscreen: bool = False) -> list[UINode]:
        """The page's visible elements that the CSS ``selector`` matches (a ``css=`` target), as UI
        nodes a step can act on. A string that is no CSS selector is a ValueError."""
        with self._boundary("find elements by a CSS selector"):
            raw = self._evaluate(js("tree.js"), {"css": selector, "offscreen": offscreen})
        if isinstance(raw, dict):
            raise ValueError(f"css={selector!r} is not a CSS selector: {raw.get('error')}")
        return [m for m in (self._node(n, n["ref"]) for n in raw) if m]

    def tree_beyond_view(self) -> list[UINode]:
        """The page's elements, also those scrolled out of the viewport (boxes outside the screen)."""
        with self._boundary("read the page's elements"):
            return self._read_tree({"offscreen": True})

    def scroll_into_view(self, node: UINode) -> None:
        """Scroll the page (and every scrolling box around ``node``) until ``node`` is in the middle of
        the view, as Playwright does before acting on an element."""
        with self._boundary("scroll an element into view"):
            el = self._element(node)
            if el is None:
                raise DriverError(f"{node.describe()} is no longer on the page")
            el.evaluate("(e) => e.scrollIntoView({block: 'center', inline: 'center', behavior: 'instant'})")
            self._evaluate(NEXT_FRAMES)

    def _node(self, n: dict[str, Any], ref: str, geo: FrameGeometry | None = None) -> UINode | None:
        s = self.scale
        x, y, w, h = n["x"], n["y"], n["w"], n["h"]
        if geo is not None:  # onto the page, and only the part the frame shows
            x0, y0 = max(x + geo.ox, geo.x0), max(y + geo.oy, geo.y0)
            x1, y1 = min(x + geo.ox + w, geo.x1), min(y + geo.oy + h, geo.y1)
            if x1 - x0 < 1 or y1 - y0 < 1:
                return None
            x, y, w, h = x0, y0, x1 - x0, y1 - y0
        return UINode(
            ref=ref,
            role=n["role"],
            name=n["name"],
            text=n["text"],
            tag=n["tag"],
            placeholder=n["placeholder"],
            value=n["value"],
            checked=n["checked"],
            interactive=n["interactive"],
            options=tuple(n["options"]),
            focused=n["focused"],
            enabled=n.get("enabled", True),
            title=n.get("title", ""),
            test_id=n.get("testid", ""),
            inner=n.get("inner"),
            box=Box(x * s, y * s, w * s, h * s),
        )

    _MAX_FRAMES = 16
    """Frames read into the UI tree and watched for an action's effect, at most (pages full of ads)."""

    def _child_frames(self) -> list[tuple[Any, FrameGeometry]]:
        """The page's visible frames below the main one, parents before children, each with where it
        lies on the page."""
        from playwright.sync_api import Error as PlaywrightError

        main = self.page.main_frame
        frames = self.page.frames
        if len(frames) == 1:
            return []
        vp = self.page.viewport_size or {"width": 0, "height": 0}
        geos: dict[Any, FrameGeometry] = {main: FrameGeometry(0, 0, 0, 0, vp["width"], vp["height"])}
        out: list[tuple[Any, FrameGeometry]] = []
        for frame in frames:
            if frame is main or frame.is_detached() or frame.parent_frame not in geos:
                continue
            if len(out) >= self._MAX_FRAMES:
                break
            try:
                element = frame.frame_element()
                try:
                    box = element.evaluate(_FRAME_BOX)
                finally:
                    element.dispose()
            except PlaywrightError:
                continue
            if box is None:
                continue
            parent = geos[frame.parent_frame]
            ox, oy = parent.ox + box[0], parent.oy + box[1]
            geo = FrameGeometry(
                ox,
                oy,
                max(parent.x0, ox),
                max(parent.y0, oy),
                min(parent.x1, ox + box[2]),
                min(parent.y1, oy + box[3]),
            )
            if geo.x1 - geo.x0 < 1 or geo.y1 - geo.y0 < 1:
                continue
            geos[frame] = geo
            out.append((frame, geo))
        return out

    def _in_frame(self, ref: str) -> tuple[Any, str, FrameGeometry | None]:
        """The frame an element of the last tree lives in, its ref there, and where the frame lies."""
        head, sep, local = ref.partition(":")
        if not sep:
            return self.page.main_frame, ref, None
        entry = self._frame_refs.get(int(head))
        if entry is None or entry[0].is_detached():
            raise DriverError("the frame this element was in is gone")
        return entry[0], local, entry[1]

    def _element(self, node: UINode) -> Any:
        """The Playwright element handle of ``node`` (in whichever frame it lives)."""
        frame, local, _ = self._in_frame(node.ref)
        handle = frame.evaluate_handle("(ref) => (window.__pp_nodes || [])[Number(ref)]", local)
        return handle.as_element()

    last_cover: str | None = None
    """After a hit test that found nothing of the element on top: what is on top at its centre."""

    def hit_point(self, node: UINode) -> A.Point | None:
        with self._boundary("hit-test an element"):
            res = self._hit(node, settle=False)
        return None if res is None else (round(res[0] * self.scale), round(res[1] * self.scale))

    def aim(self, node: UINode) -> A.Point | None:
        """Move the pointer onto ``node`` and return the point where it is on top once the page has
        reacted to the pointer (a hover menu that closes as the pointer leaves it moves what was under
        it), as Playwright does before a click; None when nothing of it can be hit."""
        with self._boundary("move the pointer onto an element"):
            res = self._hit(node, settle=False)
            for _ in range(3):
                if res is None:
                    return None
                self.page.mouse.move(res[0], res[1])
                again = self._hit(node, settle=True)
                if again == res:
                    break
                res = again
        return None if res is None else (round(res[0] * self.scale), round(res[1] * self.scale))

    def _hit(self, node: UINode, *, settle: bool) -> list[float] | None:
        """hit.js for ``node`` in its frame, as a point on the page in CSS pixels."""
        from playwright.sync_api import Error as PlaywrightError

        frame, local, geo = self._in_frame(node.ref)
        arg = {"ref": local, "settle": settle}
        self.last_cover = None
        if geo is None:
            res = self._evaluate(js("hit.js"), arg)
            if isinstance(res, dict):
                self.last_cover = res.get("cover")
            return res if isinstance(res, list) else None
        try:
            res = frame.evaluate(js("hit.js"), arg)
        except PlaywrightError:
            return None  # the frame navigated meanwhile
        if not isinstance(res, list):
            self.last_cover = res.get("cover") if isinstance(res, dict) else None
            return None
        x, y = res[0] + geo.ox, res[1] + geo.oy
        if not (geo.x0 <= x < geo.x1 and geo.y0 <= y < geo.y1):
            return None  # scrolled out of the part of the frame the page shows
        if not self._frame_reaches(frame, x, y):
            return None  # something of the page covers the frame there
        return [x, y]

    def _frame_reaches(self, frame: Any, x: float, y: float) -> bool:
        """Whether a click at page point (x, y) lands in ``frame``: in each parent, the element at that
        point is the frame's own element."""
        from playwright.sync_api import Error as PlaywrightError

        geos = {f: g for f, g in self._frame_refs.values()}
        while frame.parent_frame is not None:
            parent = frame.parent_frame
            origin = geos.get(parent, FrameGeometry(0, 0, 0, 0, 0, 0))
            try:
                element = frame.frame_element()
                try:
                    if not element.evaluate(_AT_POINT, [x - origin.ox, y - origin.oy]):
                        return False
                finally:
                    element.dispose()
            except PlaywrightError:
                return False
            frame = parent
        return True

    def select_option(self, node: UINode, label: str) -> None:
        with self._boundary(f"select {label!r}"):
            el = self._element(node)
            if el is None:
                raise DriverError(f"the dropdown {node.describe()} is no longer on the page")
            el.select_option(label=label, timeout=5_000)

    def _mark_frames(self) -> list[Any]:
        """Before an action: each frame's change counter is read as seen, so that settle can tell
        whether the action changed a frame's document (its own DOM is not the page's)."""
        from playwright.sync_api import Error as PlaywrightError

        marked = []
        for frame in self.page.frames[1 : 1 + self._MAX_FRAMES]:
            with contextlib.suppress(PlaywrightError):
                frame.evaluate("() => { window.__pp_seen = window.__pp_mut || 0; }")
                marked.append(frame)
        return marked

    def _frames_changed(self, quiet_ms: float, timeout: float) -> bool:
        """Whether the documents of the frames marked before the action changed (or were replaced)."""
        from playwright.sync_api import Error as PlaywrightError

        marked, self._marked = self._marked, []
        for frame in marked:
            if frame.is_detached():
                return True
            try:
                facts = frame.evaluate(js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000})
            except PlaywrightError as exc:
                if "destroyed" in exc.message or "navigat" in exc.message:
                    return True  # the frame went to another document
                continue
            if facts.get("changed"):
                return True
        return False
