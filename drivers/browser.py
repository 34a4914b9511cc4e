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
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pixelpilot.drivers.base import DialogPolicy, Screen
from pixelpilot.drivers.browser_launch import (  # noqa: F401 - CHROMIUM_ARGS: part of this module's surface
    CHROMIUM_ARGS,
    CONNECT_TIMEOUT_MS,
    _Playwright,
    find_chromium,
    open_context,
    playwright_session,
    redact,
)
from pixelpilot.drivers.browser_page import PageActivity
from pixelpilot.drivers.browser_tree import NEXT_FRAMES, FrameGeometry, PageTree, js
from pixelpilot.drivers.keys import playwright_combo
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["BrowserDriver", "NavigationResult", "find_chromium", "playwright_session"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NavigationResult:
    url: str
    ok: bool
    status: int | None = None
    error: str | None = None


class BrowserDriver(PageActivity, PageTree):
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
        self.endpoint: str | None = None
        """Where the browser runs when it is not ours (``connect``/``cdp``), credentials removed."""
        self._remote_cdp = False
        """Whether :meth:`close` closes the context and the browser (not for :meth:`attach`)."""
        self._closed = False
        self._nav: dict[str, Any] | None = None
        """The main frame's navigation an action started: url, status, error, committed."""
        self._dialog_policy: DialogPolicy = "dismiss"  # Playwright's default, but recorded
        self._next_dialog: DialogPolicy | None = None
        self._dialogs: list[dict[str, Any]] = []
        self._responses: list[tuple[str, int]] = []
        self._probe: tuple[dict[str, Any], bytes] | None = None
        self._blocked: list[str] = []
        """Navigations refused since the last settle (see :meth:`restrict_navigation`)."""
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
            context.add_init_script(js("watch.js"))
            if page.url not in ("", "about:blank"):  # the document already loaded missed the init script
                page.evaluate(js("watch.js"))
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
        connect: str | None = None,
        cdp: str | None = None,
    ) -> BrowserDriver:
        """Start Chromium and open one page of ``viewport`` CSS pixels. ``base_url``: relative URLs given
        to :meth:`goto` are resolved against it; ``storage_state``: cookies and local storage saved by
        :meth:`save_storage_state` (log in once, reuse it), as Playwright's contexts take them.

        Or use a browser that runs elsewhere, in a fresh context of its own: ``connect`` a Playwright
        browser server (``ws://…``: ``playwright run-server``, ``launchServer``, the grids and services
        that speak Playwright's protocol), or ``cdp`` a Chromium's DevTools endpoint (``http://host:9222``
        from ``--remote-debugging-port``, or its ``ws://…/devtools/browser/…``). :meth:`close` closes
        that context and disconnects; it leaves a CDP browser running."""
        if storage_state is not None and not Path(storage_state).is_file():
            raise DriverError(f"no storage state file at {storage_state} (save one with save_storage_state)")
        if connect and cdp:
            raise DriverError(
                "give connect (a Playwright browser server) or cdp (a DevTools endpoint), not both"
            )
        try:
            from playwright.sync_api import Error as PlaywrightError
        except ImportError as exc:
            raise DriverUnavailable(
                "the browser driver needs Playwright", install="pip install 'pixelpilot[browser]'"
            ) from exc
        endpoint = connect or cdp
        exe = executable_path or (find_chromium() if endpoint is None else "")
        if (
            endpoint is None
            and not headless
            and not os.environ.get("DISPLAY")
            and not os.environ.get("WAYLAND_DISPLAY")
        ):
            raise DriverUnavailable(
                "a headed browser needs a display, and DISPLAY is not set",
                install="run headless, or under a virtual display: xvfb-run pixelpilot run --headed ...",
            )
        pw = _Playwright.acquire()
        try:
            if connect:
                browser = pw.chromium.connect(connect, slow_mo=slow_mo, timeout=CONNECT_TIMEOUT_MS)
            elif cdp:
                browser = pw.chromium.connect_over_cdp(cdp, slow_mo=slow_mo, timeout=CONNECT_TIMEOUT_MS)
            else:
                browser = pw.chromium.launch(
                    executable_path=exe, headless=headless, args=[*CHROMIUM_ARGS, *args], slow_mo=slow_mo
                )
        except PlaywrightError as exc:
            _Playwright.release()
            if endpoint is None:
                raise DriverError(f"Chromium ({exe}) failed to start: {exc.message.splitlines()[0]}") from exc
            raise DriverUnavailable(
                f"cannot reach the browser at {redact(endpoint)}: {exc.message.splitlines()[0]}",
                install="start it first (playwright run-server --port N; chromium --remote-debugging-port=N)",
            ) from exc
        try:
            context, page = open_context(browser, viewport, device_scale_factor, base_url, storage_state)
        except PlaywrightError as exc:
            if not cdp:  # never close a CDP browser: that would quit someone else's Chromium
                with contextlib.suppress(Exception):
                    browser.close()
            _Playwright.release()
            what = (
                f"the browser at {redact(endpoint)} failed to open a page"
                if endpoint
                else f"Chromium ({exe}) failed to start"
            )
            raise DriverError(f"{what}: {exc.message.splitlines()[0]}") from exc
        driver = cls(pw, browser, context, page, scale=device_scale_factor, frame_format=frame_format)
        driver.endpoint = redact(endpoint) if endpoint else None
        driver._remote_cdp = bool(cdp)
        if url:
            driver.goto(url)
        return driver

    def fresh_context(
        self,
        *,
        viewport: tuple[int, int] = (1280, 800),
        device_scale_factor: float = 1.0,
        base_url: str | None = None,
        storage_state: str | os.PathLike[str] | None = None,
    ) -> BrowserDriver:
        """A driver on this browser in a new context — no cookies, storage or pages of the last one, as
        :meth:`launch` gives — for the next task of a long-lived worker (a context costs milliseconds, a
        browser a second or more). This driver's context is closed and the browser passes to the new one."""
        if self._closed or not self._owned or not self._browser.is_connected():
            raise DriverError("this browser is closed or not ours: launch a new one")
        from playwright.sync_api import Error as PlaywrightError

        try:
            context, page = open_context(
                self._browser, viewport, device_scale_factor, base_url, storage_state
            )
        except PlaywrightError as exc:
            raise DriverError(f"the browser failed to open a page: {exc.message.splitlines()[0]}") from exc
        with contextlib.suppress(Exception):
            self._context.close()
        self._closed = True  # its Playwright and browser now belong to the new driver
        fresh = type(self)(
            self._pw, self._browser, context, page, scale=device_scale_factor, frame_format=self.frame_format
        )
        fresh.endpoint, fresh._remote_cdp = self.endpoint, self._remote_cdp
        return fresh

    @property
    def alive(self) -> bool:
        """Whether the browser is still there (a long-lived worker replaces one that crashed)."""
        return not self._closed and bool(self._browser is not None and self._browser.is_connected())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._owned:  # attached to someone else's page: only our CDP session is ours
            with contextlib.suppress(Exception):
                self._cdp.detach()
            return
        # a browser reached over CDP belongs to someone else: Playwright's close() would quit it, so
        # only our context is closed and the connection ends with Playwright
        steps = (
            (self._context.close, _Playwright.release)
            if self._remote_cdp
            else (self._context.close, self._browser.close, _Playwright.release)
        )
        for step in steps:
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
                        self.page.evaluate(NEXT_FRAMES)
                return shot
            except PlaywrightError as exc:
                if "Unable to capture screenshot" not in exc.message or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

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

    def restrict_navigation(self, allows: Callable[[str], bool]) -> None:
        """Refuse to load a document (a page, a frame) from a host ``allows`` refuses: the request never
        leaves the browser, the page stays, and the next settle reports it (``blocked``)."""

        def route(r: Any) -> None:
            req = r.request
            parts = urlsplit(req.url)
            if (
                req.is_navigation_request()
                and parts.scheme in ("http", "https")
                and not allows(parts.hostname or "")
            ):
                # "204 No Content" cancels a navigation where it stands: the page stays as it was
                # (an aborted request would commit Chromium's error page in its place)
                self._blocked.append(req.url)
                r.fulfill(status=204, body="")
            else:
                r.continue_()

        self._context.route("**/*", route)

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
            facts = dict(self._evaluate(js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000}))
            if facts.get("popups") and not self._opened:  # asked for: wait until the browser has it
                with contextlib.suppress(Exception):
                    self._opened.append(self.page.wait_for_event("popup", timeout=nav_timeout * 1000))
            if self._opened:  # the action opened a new tab (target=_blank, window.open): act on it now
                page = self._opened[-1]
                self._opened.clear()
                page.wait_for_load_state("load", timeout=nav_timeout * 1000)
                self._adopt(page)
                self._nav = None
                facts = dict(self._evaluate(js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000}))
                facts.update(changed=True, opened=self.tab)
                return facts
            if self._blocked:  # a navigation the policy refused: nothing loads, nothing to wait for
                facts.update(blocked=self._blocked[-1], changed=False)
                self._blocked.clear()
                self._nav = None
                self._marked = []
                self._probe = None
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
                    with contextlib.suppress(Exception):  # the page's own listener records it
                        self.page.wait_for_event("download", timeout=5000)
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
                    again = self._evaluate(js("settle.js"), {"quiet": quiet_ms, "timeout": timeout * 1000})
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
