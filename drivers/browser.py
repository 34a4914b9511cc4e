"""The browser driver: Playwright's sync API driving Chromium (Debian's, found automatically).

Screenshots come through CDP, input is real mouse and keyboard events, the UI tree is read from the
DOM with boxes, clicks on elements are hit-tested, and every action is followed by a settle that waits
until the page is still.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

from pixelpilot.drivers.base import Box, DialogPolicy, Screen, UINode
from pixelpilot.drivers.browser_page import PageActivity
from pixelpilot.drivers.keys import playwright_combo
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["BrowserDriver", "NavigationResult", "find_chromium", "playwright_session"]

log = logging.getLogger(__name__)

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
)
_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
)
INSTALL_CHROMIUM = "sudo apt-get install -y chromium   (or set PIXELPILOT_CHROMIUM=/path/to/chrome)"


def find_chromium(env: Mapping[str, str] | None = None) -> str:
    """Path of a Chromium binary: ``$PIXELPILOT_CHROMIUM``, else Debian's, else one on PATH."""
    override = (os.environ if env is None else env).get("PIXELPILOT_CHROMIUM")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override
        raise DriverUnavailable(
            f"PIXELPILOT_CHROMIUM={override} is not an executable file", install=INSTALL_CHROMIUM
        )
    for cand in _CANDIDATES:
        path = cand if os.path.isabs(cand) else shutil.which(cand)
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    raise DriverUnavailable("Chromium was not found", install=INSTALL_CHROMIUM)


@cache
def _js(name: str) -> str:
    return resources.files("pixelpilot.drivers").joinpath("js", name).read_text("utf-8")


class _Playwright:
    """One Playwright per thread, shared by the drivers launched there (the sync API allows one)."""

    _local = threading.local()

    @classmethod
    def acquire(cls) -> Any:
        from playwright.sync_api import sync_playwright

        if getattr(cls._local, "pw", None) is None:
            cls._local.pw = sync_playwright().start()
            cls._local.users = 0
        cls._local.users += 1
        return cls._local.pw

    @classmethod
    def release(cls) -> None:
        if getattr(cls._local, "pw", None) is None:
            return
        cls._local.users -= 1
        if cls._local.users <= 0:
            pw, cls._local.pw = cls._local.pw, None
            with contextlib.suppress(Exception):
                pw.stop()


@contextlib.contextmanager
def playwright_session() -> Iterator[Any]:
    """This thread's Playwright (the sync API allows one per thread), shared with the drivers
    launched here and stopped when the last user is done."""
    try:
        pw = _Playwright.acquire()
    except ImportError as exc:
        raise DriverUnavailable(
            "the browser driver needs Playwright", install="pip install 'pixelpilot[browser]'"
        ) from exc
    try:
        yield pw
    finally:
        _Playwright.release()


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

_NEXT_FRAMES = """() => new Promise((done) => {
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


@dataclass(frozen=True)
class NavigationResult:
    url: str
    ok: bool
    status: int | None = None
    error: str | None = None


class BrowserDriver(PageActivity):
    """Chromium through Playwright. Use :meth:`launch`; it is a context manager.

    >>> with BrowserDriver.launch(headless=True) as d:       # doctest: +SKIP
    ...     d.goto("https://example.org")
    """

    name = "browser"
    capabilities = frozenset({"screenshot", "ui_tree", "navigate", "keyboard", "mouse", "select", "settle"})

    def __init__(
        self,
        pw: Any,
        browser: Any,
        context: Any,
        page: Any,
        *,
        scale: float,
        frame_format: str,
        owned: bool = True,
    ) -> None:
        self._pw, self._browser, self._context, self.page = pw, browser, context, page
        self.scale = scale
        self.frame_format = frame_format
        self._owned = owned
        """Whether :meth:`close` closes the context and the browser (not for :meth:`attach`)."""
        self._closed = False
        self._nav: dict[str, Any] | None = None
        """The main frame's navigation an action started: url, status, error, committed."""
        self._dialog_policy: DialogPolicy = "dismiss"  # Playwright's default, but recorded
        self._next_dialog: DialogPolicy | None = None
        self._dialogs: list[dict[str, Any]] = []
        self._responses: list[tuple[str, int]] = []
        self._probe: tuple[dict[str, Any], bytes] | None = None
        self._downloads: list[Any] = []
        self._downloaded: list[str] = []
        """Names of the downloads since the last action (saved or not yet)."""
        """URLs and statuses of the responses the page received since the last action (bounded)."""
        self._opened: list[Any] = []
        """Pages the current page opened (target=_blank, window.open) since the last settle."""
        self._watched: set[int] = set()
        self._frame_refs: dict[int, tuple[Any, FrameGeometry]] = {}
        """The frames of the last UI tree read, by the number their elements' refs begin with."""
        self._marked: list[Any] = []
        """The frames whose documents the current action may change (see :meth:`_mark_frames`)."""
        self._adopt(page)

    def _adopt(self, page: Any) -> None:
        """Make ``page`` the one observed and acted on (a CDP session for its screenshots, its events)."""
        self.page = page
        self._cdp = self._context.new_cdp_session(page)
        if id(page) in self._watched:
            return
        self._watched.add(id(page))
        page.on("crash", lambda *_: log.error("the browser page crashed"))
        page.on("request", self._on_request)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)
        page.on("framenavigated", self._on_navigated)
        page.on("dialog", self._on_dialog)
        page.on("popup", self._on_popup)
        page.on("download", self._on_download)

    @classmethod
    def attach(cls, page: Any, *, frame_format: str = "jpeg") -> BrowserDriver:
        """A driver over a Playwright ``Page`` someone else owns (pytest-playwright's ``page``, a page
        of your own script): its steps also appear in that context's Playwright trace. :meth:`close`
        leaves the page, its context and its browser open."""
        from playwright.sync_api import Error as PlaywrightError

        try:
            context = page.context
            context.add_init_script(_js("watch.js"))
            if page.url not in ("", "about:blank"):  # the document already loaded missed the init script
                page.evaluate(_js("watch.js"))
            scale = float(page.evaluate("window.devicePixelRatio") or 1.0)
        except PlaywrightError as exc:
            raise DriverError(f"cannot drive this page: {exc.message.splitlines()[0]}") from exc
        return cls(None, context.browser, context, page, scale=scale, frame_format=frame_format, owned=False)

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def launch(
        cls,
        *,
        headless: bool = True,
        viewport: tuple[int, int] = (1280, 800),
        device_scale_factor: float = 1.0,
        executable_path: str | None = None,
        slow_mo: float = 0,
        args: Sequence[str] = (),
        frame_format: str = "jpeg",
        url: str | None = None,
        base_url: str | None = None,
        storage_state: str | os.PathLike[str] | None = None,
    ) -> BrowserDriver:
        """Start Chromium and open one page of ``viewport`` CSS pixels. ``base_url``: relative URLs given
        to :meth:`goto` are resolved against it; ``storage_state``: cookies and local storage saved by
        :meth:`save_storage_state` (log in once, reuse it), as Playwright's contexts take them."""
        if storage_state is not None and not Path(storage_state).is_file():
            raise DriverError(f"no storage state file at {storage_state} (save one with save_storage_state)")
        try:
            from playwright.sync_api import Error as PlaywrightError
        except ImportError as exc:
            raise DriverUnavailable(
                "the browser driver needs Playwright", install="pip install 'pixelpilot[browser]'"
            ) from exc
        exe = executable_path or find_chromium()
        if not headless and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            raise DriverUnavailable(
                "a headed browser needs a display, and DISPLAY is not set",
                install="run headless, or under a virtual display: xvfb-run pixelpilot run --headed ...",
            )
        pw = _Playwright.acquire()
        try:
            browser = pw.chromium.launch(
                executable_path=exe, headless=headless, args=[*CHROMIUM_ARGS, *args], slow_mo=slow_mo
            )
            context = browser.new_context(
                viewport={"width": viewport[0], "height": viewport[1]},
                device_scale_factor=device_scale_factor,
                base_url=base_url,
                storage_state=str(storage_state) if storage_state is not None else None,
            )
            context.add_init_script(_js("watch.js"))
            page = context.new_page()
        except PlaywrightError as exc:
            _Playwright.release()
            raise DriverError(f"Chromium ({exe}) failed to start: {exc.message.splitlines()[0]}") from exc
        driver = cls(pw, browser, context, page, scale=device_scale_factor, frame_format=frame_format)
        if url:
            driver.goto(url)
        return driver

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._owned:  # attached to someone else's page: only our CDP session is ours
            with contextlib.suppress(Exception):
                self._cdp.detach()
            return
        for step in (self._context.close, self._browser.close, _Playwright.release):
            with contextlib.suppress(Exception):
                step()

    def __enter__(self) -> BrowserDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        """Translate Playwright's errors into ours."""
        from playwright.sync_api import Error as PlaywrightError

        if self._closed:
            raise DriverError(f"cannot {what}: the browser driver is closed")
        try:
            yield
        except PlaywrightError as exc:
            msg = exc.message.splitlines()[0] if exc.message else str(exc)
            if "closed" in msg or "crash" in msg.lower() or "disconnected" in msg.lower():
                raise DriverError(f"the browser went away while trying to {what}: {msg}") from exc
            raise DriverError(f"browser error while trying to {what}: {msg}") from exc

    # -- observe ---------------------------------------------------------------------------------
    def observe(self, *, tree: bool = True) -> Screen:
        with self._boundary("take a screenshot"):
            params: dict[str, Any] = {"format": self.frame_format, "optimizeForSpeed": True}
            if self.frame_format == "jpeg":
                params["quality"] = 85
            vp = self.page.viewport_size or {"width": 0, "height": 0}
            if self.scale != 1:
                # without a clip, headless Chromium captures CSS pixels; ask for device pixels
                params["clip"] = {
                    "x": 0,
                    "y": 0,
                    "width": vp["width"],
                    "height": vp["height"],
                    "scale": self.scale,
                }
            shot = self._capture(params)
            data = base64.b64decode(shot["data"])
        if not data:
            raise DriverError("the browser returned an empty screenshot")
        w, h = round(vp["width"] * self.scale), round(vp["height"] * self.scale)
        # the element tree is read when a step first asks for it (a step decided from the cache or by
        # the model never does): reading it costs ~6 ms a frame
        return Screen(
            data, w, h, self.scale, format=self.frame_format, tree_loader=self.ui_tree if tree else None
        )

    def _capture(self, params: dict[str, Any]) -> dict[str, Any]:
        """CDP screenshot; retried briefly, since Chromium refuses one while a new document's first
        frame is not composited yet ("Unable to capture screenshot")."""
        from playwright.sync_api import Error as PlaywrightError

        for attempt in range(5):
            try:
                shot = dict(self._cdp.send("Page.captureScreenshot", params))
                if "clip" in params and len(self.page.frames) > 1:
                    # a clipped capture leaves Chromium's hit-testing of out-of-process frames stale until
                    # the next frames are drawn: a click right after it is lost inside a cross-site frame
                    with contextlib.suppress(PlaywrightError):
                        self.page.evaluate(_NEXT_FRAMES)
                return shot
            except PlaywrightError as exc:
                if "Unable to capture screenshot" not in exc.message or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

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
        nodes = [m for m in (self._node(n, n["ref"]) for n in self._evaluate(_js("tree.js"), arg)) if m]
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
                raw = frame.evaluate(_js("tree.js"), arg)
            except PlaywrightError:
                continue  # a frame navigating or going away meanwhile
            inner = [m for m in (self._node(n, f"{i}:{n['ref']}", geo) for n in raw) if m is not None]
            if not focused:
                found.extend(inner)
            elif inner and inner[0].tag not in ("iframe", "frame"):
                found = inner[:1]
        return found if focused else [*nodes, *found]

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
            self._evaluate(_NEXT_FRAMES)

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

    def _evaluate(self, script: str, arg: Any = None) -> Any:
        """Evaluate, retrying once when a navigation replaced the document meanwhile."""
        from playwright.sync_api import Error as PlaywrightError

        for attempt in range(3):
            try:
                return self.page.evaluate(script, arg)
            except PlaywrightError as exc:
                navigated = "context was destroyed" in exc.message or "navigat" in exc.message
                if navigated and attempt < 2:
                    with contextlib.suppress(PlaywrightError):
                        self.page.wait_for_load_state("load", timeout=10_000)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- element helpers -------------------------------------------------------------------------
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
        if geo is None:
            res = self._evaluate(_js("hit.js"), arg)
            return res if isinstance(res, list) else None
        try:
            res = frame.evaluate(_js("hit.js"), arg)
        except PlaywrightError:
            return None  # the frame navigated meanwhile
        if not isinstance(res, list):
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

    # -- act -------------------------------------------------------------------------------------
    def goto(self, url: str, *, timeout: float = 30.0) -> NavigationResult:
        from playwright.sync_api import Error as PlaywrightError

        with self._boundary(f"open {url}"):
            try:
                resp = self.page.goto(url, wait_until="load", timeout=timeout * 1000)
            except PlaywrightError as exc:
                if "closed" in exc.message:
                    raise
                return NavigationResult(url, False, None, exc.message.splitlines()[0])
        status = resp.status if resp is not None else None
        ok = status is None or status < 400
        return NavigationResult(
            url, ok, status, None if ok else f"HTTP {status} {resp.status_text if resp else ''}".strip()
        )

    def perform(self, action: A.Action) -> None:
        self._nav = {}  # watch for a navigation this action starts (settle waits for it)
        self._opened.clear()
        self._responses.clear()
        self._downloaded.clear()
        with self._boundary(f"perform {action.action}"):
            self._probe = self._pixel_probe(action)
            self._marked = self._mark_frames()
            self._perform(action)

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
                facts = frame.evaluate(_js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000})
            except PlaywrightError as exc:
                if "destroyed" in exc.message or "navigat" in exc.message:
                    return True  # the frame went to another document
                continue
            if facts.get("changed"):
                return True
        return False

    _OPAQUE = ("IFRAME", "FRAME", "CANVAS", "VIDEO", "EMBED", "OBJECT")
    """Elements whose changes the page's DOM does not show: an action on one is judged by its pixels."""

    def _pixel_probe(self, action: A.Action) -> tuple[dict[str, Any], bytes] | None:
        """Before an action at a point over a canvas, video or frame: the pixels around the point (the
        DOM cannot tell whether the action did anything there)."""
        if action.point is None or action.action in ("mouse_move", "scroll"):
            return None
        x, y = self._px(action.point)
        tag = self._evaluate("([x, y]) => (document.elementFromPoint(x, y) || {}).tagName || ''", [x, y])
        if tag not in self._OPAQUE:
            return None
        vp = self.page.viewport_size or {"width": 0, "height": 0}
        half = 100
        clip = {
            "x": max(0, x - half),
            "y": max(0, y - half),
            "width": min(2 * half, vp["width"] - max(0, x - half)),
            "height": min(2 * half, vp["height"] - max(0, y - half)),
            "scale": 1,
        }
        if clip["width"] <= 0 or clip["height"] <= 0:
            return None
        return clip, self._clip(clip)

    def _clip(self, clip: dict[str, Any]) -> bytes:
        shot = self._capture({"format": "png", "clip": clip, "optimizeForSpeed": True})
        return base64.b64decode(shot["data"])

    def _px(self, p: A.Point) -> tuple[float, float]:
        return (p[0] / self.scale, p[1] / self.scale)

    def _perform(self, a: A.Action) -> None:
        mouse, kb = self.page.mouse, self.page.keyboard
        match a:
            case A.Click() | A.DoubleClick() | A.TripleClick() | A.RightClick() | A.MiddleClick():
                count = {"double_click": 2, "triple_click": 3}.get(a.action, 1)
                button = {"right_click": "right", "middle_click": "middle"}.get(a.action, "left")
                mouse.click(*self._px(a.at), click_count=count, button=button)
            case A.MouseMove():
                mouse.move(*self._px(a.at))
            case A.Drag():
                if a.start is not None:
                    mouse.move(*self._px(a.start))
                mouse.down()
                mouse.move(*self._px(a.end), steps=12)
                mouse.up()
            case A.Swipe():
                mouse.move(*self._px(a.start))
                mouse.down()
                mouse.move(*self._px(a.end), steps=12)
                mouse.up()
            case A.LongPress():
                mouse.move(*self._px(a.at))
                mouse.down()
                time.sleep(a.duration)
                mouse.up()
            case A.Type():
                kb.type(a.text)
            case A.Key():
                kb.press(playwright_combo(a.keys))
            case A.Scroll():
                if a.at is not None:
                    mouse.move(*self._px(a.at))
                mouse.wheel(a.dx / self.scale, a.dy / self.scale)
            case A.SystemButton(button="Back"):
                self.page.go_back(wait_until="load")
            case A.SystemButton(button="Enter"):
                kb.press("Enter")
            case A.Wait():
                time.sleep(a.seconds)
            case A.Answer() | A.Terminate():
                pass
            case _:
                raise DriverError(f"the browser driver cannot perform {a.action!r} ({a})")

    def settle(
        self, *, timeout: float = 3.0, quiet_ms: float = 30, nav_timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the page is still. When the last action started a navigation of the main frame
        (a link, a form's POST and redirect, a reload, a same-document URL change), wait for the new
        document to load and settle on it: ``navigated`` says where it went and how (status, error),
        and ``changed`` is true — the action had its effect and is never repeated."""
        with self._boundary("wait for the page to settle"):
            facts = dict(self._evaluate(_js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000}))
            if facts.get("popups") and not self._opened:  # asked for: wait until the browser has it
                with contextlib.suppress(Exception):
                    self._opened.append(self.page.wait_for_event("popup", timeout=nav_timeout * 1000))
            if self._opened:  # the action opened a new tab (target=_blank, window.open): act on it now
                page = self._opened[-1]
                self._opened.clear()
                page.wait_for_load_state("load", timeout=nav_timeout * 1000)
                self._adopt(page)
                self._nav = None
                facts = dict(self._evaluate(_js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000}))
                facts.update(changed=True, opened=self.tab)
                return facts
            nav = self._nav  # still filled in by the page's events while waiting for the new document
            if nav and nav.get("requested") and not nav.get("committed") and not nav.get("error"):
                with contextlib.suppress(Exception):  # a timeout here is reported below as no load
                    self.page.wait_for_event(
                        "framenavigated", predicate=self._main, timeout=nav_timeout * 1000
                    )
                nav["committed"] = True
            if nav and nav.get("error") == "net::ERR_ABORTED":  # a link to a file: a download, not a page
                if not self._downloads:
                    with contextlib.suppress(Exception):
                        self._on_download(self.page.wait_for_event("download", timeout=5000))
                if self._downloads:
                    facts.update(changed=True, downloads=len(self._downloads))
                    nav = {}
            if self._marked and not facts.get("changed") and not nav:
                facts["changed"] = self._frames_changed(quiet_ms, min(timeout, 1.0))
            self._marked = []
            probe, self._probe = self._probe, None
            if probe is not None and not facts.get("changed") and not nav:
                # a canvas, video or frame: judged by its pixels (a frame's document is not watched)
                for _ in range(6):
                    if self._clip(probe[0]) != probe[1]:
                        facts["changed"] = True
                        break
                    time.sleep(0.05)
                facts["pixels"] = True
            if nav and (nav.get("committed") or nav.get("error")):
                if not nav.get("error"):
                    self.page.wait_for_load_state("load", timeout=nav_timeout * 1000)
                    again = self._evaluate(_js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000})
                    facts["waited_ms"] = facts.get("waited_ms", 0) + again.get("waited_ms", 0)
                self._nav = None
                facts["changed"] = True
                facts["navigated"] = {
                    "url": nav.get("url") or self.page.url,
                    "status": nav.get("status"),
                    "error": nav.get("error"),
                }
            self._nav = None
            return facts
