"""The desktop driver: a real X display, screenshots with mss, the accessibility tree over AT-SPI.

Headless by default: a private Xvfb is started and exported only to the programs this driver launches
(``d.launch([...])``), with a session D-Bus and the AT-SPI bus beside it, so that GTK and Qt applications
publish their widgets: the UI tree the locator chain reads first (then OCR). ``headless=False`` or
``display=":0"`` drives an existing screen (and its session's accessibility bus, when there is one).

Input: on a private display, python-xlib's XTEST on this driver's own connection (what pyautogui does
underneath, but pyautogui binds one global display at import, so two drivers could not run side by side);
on the user's own display, pyautogui — the usual way Python drives a screen, and the path to Windows and
macOS. Text goes through ``xdotool`` when it is not ASCII (pyautogui silently drops the rest).

There is no window manager on a private display, so the driver does what one would for focus: a window
that appears (an application's first window, a dialog) gets the keyboard focus, and a click gives it to the
window clicked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from pixelpilot.drivers.atspi import AccessibilityBus, AtspiTree, a11y_env
from pixelpilot.drivers.base import Screen
from pixelpilot.drivers.desktop_tree import SCROLL_PX_PER_CLICK, DesktopTree
from pixelpilot.drivers.keys import pyautogui_keys, xdotool_combo
from pixelpilot.drivers.procs import die_with_parent, stop_groups
from pixelpilot.drivers.xvfb import INSTALL_XVFB, VirtualDisplay
from pixelpilot.drivers.xwindows import XWindows
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["DesktopDriver"]

log = logging.getLogger(__name__)


def _load_pyautogui(display: str) -> Any:
    """pyautogui, on ``display``: it binds the display in ``$DISPLAY`` once, when first imported."""
    if os.environ.get("DISPLAY") != display:
        raise DriverError(
            f"pyautogui drives the display in $DISPLAY ({os.environ.get('DISPLAY')}), not {display}: "
            "use input='xtest' for another display"
        )
    try:
        import pyautogui
    except ImportError as exc:
        raise DriverUnavailable(
            "input on your own display goes through pyautogui", install="pip install 'pixelpilot[desktop]'"
        ) from exc
    pyautogui.PAUSE = 0  # 0.1 s after every call otherwise
    pyautogui.FAILSAFE = False  # the pointer parked in a corner is no reason to stop a test run
    return pyautogui


class DesktopDriver(DesktopTree, XWindows):
    """An X display. Use :meth:`start`; it is a context manager."""

    name = "desktop"
    action_space = "computer_use"

    def __init__(
        self,
        display: str,
        *,
        xvfb: VirtualDisplay | None = None,
        monitor: int | Sequence[int] = 1,
        scale: float = 1.0,
        frame_format: str = "jpeg",
        bus: AccessibilityBus | None = None,
        session_bus: str | None = None,
        input: str = "xtest",
    ) -> None:
        self.display = display
        self._xvfb = xvfb
        self._bus = bus
        self.scale = scale
        self.frame_format = frame_format
        self._apps: list[tuple[list[str], subprocess.Popen[bytes], bool]] = []
        self.app_logs: list[Path] = []
        """Where the launched applications' output went (``launch(log=...)``, else a temporary file)."""
        self._closed = False
        self._last_hash: int | None = None
        self._session_bus = session_bus
        self._tree: AtspiTree | None = None
        self._keys: dict[str, tuple[str, str]] = {}
        """The objects on the bus behind the nodes of the last tree read, by ref."""
        self.capabilities = frozenset({"screenshot", "keyboard", "mouse", "launch", "settle"})
        if session_bus is not None:
            self.capabilities |= {"ui_tree"}
        self._windows: set[int] = set()
        """Top-level windows seen so far: a new one gets the keyboard focus (see :meth:`_focus_new`)."""
        if input not in ("xtest", "pyautogui"):
            raise DriverError(f"unknown input backend {input!r}: xtest or pyautogui")
        self.input = input
        self._pyautogui: Any = None
        try:
            import mss
            from Xlib import display as xdisplay
        except ImportError as exc:
            raise DriverUnavailable(
                "the desktop driver needs mss and python-xlib", install="pip install 'pixelpilot[desktop]'"
            ) from exc
        self._xdotool_exe = shutil.which("xdotool")
        if not self._xdotool_exe:
            raise DriverUnavailable(
                "xdotool (keys and text input on X) is not installed", install=INSTALL_XVFB
            )
        try:
            self._x = xdisplay.Display(display)
            self._sct = mss.MSS(display=display)
        except Exception as exc:  # Xlib and mss raise their own families on a bad display
            raise DriverError(f"cannot open the X display {display}: {exc}") from exc
        monitors = self._sct.monitors
        if isinstance(monitor, int):
            if not 1 <= monitor < len(monitors):
                raise DriverError(
                    f"monitor {monitor} does not exist on {display}; it has {len(monitors) - 1}: {monitors[1:]}"
                )
            self.monitor: dict[str, int] = {
                k: int(monitors[monitor][k]) for k in ("left", "top", "width", "height")
            }
        else:
            left, top, width, height = (int(v) for v in monitor)
            root = monitors[0]
            if (
                left < 0
                or top < 0
                or width <= 0
                or height <= 0
                or left + width > root["width"]
                or top + height > root["height"]
            ):
                raise DriverError(
                    f"the region {tuple(monitor)} is not inside the {root['width']}x{root['height']} screen of {display}"
                )
            self.monitor = {"left": left, "top": top, "width": width, "height": height}
        self.monitor_index = monitor
        if input == "pyautogui":
            self._pyautogui = _load_pyautogui(display)
        self._windows = set(self._top_levels())

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        *,
        headless: bool = True,
        size: tuple[int, int] = (1280, 800),
        depth: int = 24,
        display: str | None = None,
        monitor: int | Sequence[int] = 1,
        scale: float = 1.0,
        launch: Sequence[str] | None = None,
        accessibility: bool = True,
        input: str | None = None,
    ) -> DesktopDriver:
        """A driver on a new private Xvfb (headless), or on ``display`` / ``$DISPLAY``.

        ``monitor``: which monitor to capture (1 = the first, as mss numbers them), or a region
        ``(left, top, width, height)`` of the screen; actions map into it. ``accessibility``: start a
        session D-Bus and the AT-SPI bus on a private display (on the user's display, its session's bus is
        used), so launched applications' widgets form the UI tree. ``input``: ``"xtest"`` (the default on a
        private display) or ``"pyautogui"`` (the default on the user's own)."""
        xvfb = None
        if display is None:
            if headless:
                xvfb = VirtualDisplay(size, depth)
                display = xvfb.start()
            else:
                display = os.environ.get("DISPLAY")
                if not display:
                    raise DriverUnavailable(
                        "no display: DISPLAY is not set",
                        install="run headless (the default) to use a private Xvfb",
                    )
        bus, session = None, None
        try:
            if accessibility and xvfb is not None:
                bus = AccessibilityBus(display)
                try:
                    session = bus.start()["DBUS_SESSION_BUS_ADDRESS"]
                except DriverUnavailable as exc:
                    log.warning(
                        "no accessibility tree on the desktop (%s: %s); text is found by OCR",
                        exc,
                        exc.install,
                    )
                    bus = None
            elif accessibility:
                session = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
            driver = cls(
                display,
                xvfb=xvfb,
                monitor=monitor,
                scale=scale,
                bus=bus,
                session_bus=session,
                input=input or ("xtest" if xvfb is not None else "pyautogui"),
            )
        except BaseException:
            if bus is not None:
                bus.stop()
            if xvfb is not None:
                xvfb.stop()
            raise
        if launch:
            driver.launch(list(launch))
        return driver

    def launch(
        self,
        cmd: Sequence[str],
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        wait_for_window: float = 10.0,
        expect_running: bool = True,
        log: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a program on this display (only it sees DISPLAY) and wait until the screen shows it; its
        first window gets the keyboard focus. Its output (GLib warnings and the like) is appended to ``log``
        (a run's ``app.log``), or to a temporary file (``app_logs`` says where), never the terminal."""
        self._check()
        before = self._grab_hash()
        if log is None:
            fd, name = tempfile.mkstemp(prefix="pixelpilot-app-", suffix=".log")
            os.close(fd)
            log = name
        self.app_logs.append(Path(log))
        extra = {}
        if self._bus is not None and self._session_bus is not None:
            extra = {"DBUS_SESSION_BUS_ADDRESS": self._session_bus, **a11y_env()}
        try:
            with open(log, "ab") as out:
                proc = subprocess.Popen(
                    list(cmd),
                    cwd=cwd,
                    env={**os.environ, **extra, **(env or {}), "DISPLAY": self.display},
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent(signal.SIGKILL),
                )
        except OSError as exc:
            raise DriverError(f"cannot launch {cmd[0]!r}: {exc.strerror}") from exc
        self._apps.append((list(cmd), proc, expect_running))
        deadline = time.monotonic() + wait_for_window
        while time.monotonic() < deadline:
            self._check()
            if self._grab_hash() != before:
                break
            time.sleep(0.05)
        self.settle(timeout=2.0)
        return proc

    def stop_apps(self) -> None:
        """Stop every program :meth:`launch` started (their process groups); the display stays, for the
        next task of a long-lived worker."""
        stop_groups([proc for _, proc, _ in self._apps])
        self._apps.clear()
        self.app_logs.clear()

    @property
    def alive(self) -> bool:
        return not self._closed and (self._xvfb is None or self._xvfb.alive())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        stop_groups([proc for _, proc, _ in self._apps])
        with contextlib.suppress(Exception):
            self._sct.close()
        with contextlib.suppress(Exception):
            self._x.close()
        if self._tree is not None:
            self._tree.close()
        if self._bus is not None:
            self._bus.stop()
        if self._xvfb is not None:
            self._xvfb.stop()

    def __enter__(self) -> DesktopDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        if self._closed:
            raise DriverError("the desktop driver is closed")
        if self._xvfb is not None and not self._xvfb.alive():
            raise DriverError(f"the X server (Xvfb {self.display}) has exited: {self._xvfb.log_tail()}")
        for cmd, proc, expect in self._apps:
            rc = proc.poll()
            if expect and rc not in (None, 0):  # 0: it finished (a dialog tool, once answered)
                raise DriverError(f"the application {' '.join(cmd)!r} exited (code {rc}) during the run")

    @contextlib.contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        self._check()
        try:
            yield
        except DriverError:
            raise
        except Exception as exc:  # Xlib/mss/OS errors all mean the display failed us
            self._check()  # a dead Xvfb or app explains it better
            raise DriverError(
                f"X error while trying to {what} on {self.display}: {type(exc).__name__}: {exc}"
            ) from exc

    # -- observe -----------------------------------------------------------------------------------
    def _grab(self) -> Any:
        return self._sct.grab(self.monitor)

    def _grab_hash(self) -> int:
        return zlib.crc32(self._grab().bgra)

    def observe(self, *, tree: bool = True) -> Screen:
        with self._boundary("take a screenshot"):
            shot = self._grab()
        raw = shot.bgra
        self._last_hash = zlib.crc32(raw)
        img = Image.frombuffer("RGB", shot.size, raw, "raw", "BGRX", 0, 1)  # decodes BGRX straight to RGB
        if self.scale != 1:
            img = img.resize(
                (round(img.width * self.scale), round(img.height * self.scale)), Image.Resampling.BILINEAR
            )
        # the tree stands for the screen only when an application on it publishes one (Tk and xterm do
        # not): otherwise text is looked for on the pixels
        roots = self._accessible_roots() if tree else []
        loader = (lambda: self._read_tree(roots)) if roots else None
        return Screen.from_image(img, scale=self.scale, format=self.frame_format, tree_loader=loader)

    def settle(self, *, timeout: float = 3.0, quiet_ms: float = 60) -> dict[str, Any]:
        """Wait until two grabs ``quiet_ms`` apart are identical; report whether the screen changed
        since the last observation."""
        start = time.monotonic()
        with self._boundary("wait for the screen to settle"):
            prev = self._grab_hash()
            while time.monotonic() - start < timeout:
                time.sleep(quiet_ms / 1000)
                cur = self._grab_hash()
                if cur == prev:
                    break
                prev = cur
            self._focus_new()
        changed = self._last_hash is None or prev != self._last_hash
        self._last_hash = prev
        return {"changed": changed, "waited_ms": (time.monotonic() - start) * 1000}

    # -- act ---------------------------------------------------------------------------------------
    def _xy(self, p: A.Point) -> tuple[int, int]:
        return (
            self.monitor["left"] + round(p[0] / self.scale),
            self.monitor["top"] + round(p[1] / self.scale),
        )

    def _fake(self, kind: int, detail: int = 0, xy: tuple[int, int] | None = None) -> None:
        from Xlib.ext import xtest

        if xy is not None:
            xtest.fake_input(self._x, kind, detail, x=xy[0], y=xy[1])
        else:
            xtest.fake_input(self._x, kind, detail)
        self._x.sync()

    def _move(self, xy: tuple[int, int]) -> None:
        from Xlib import X

        if self._pyautogui is not None:
            self._pyautogui.moveTo(xy[0], xy[1])
            return
        self._fake(X.MotionNotify, xy=xy)

    def _button(self, button: int, *, down: bool) -> None:
        from Xlib import X

        if self._pyautogui is not None:
            if button in (4, 5, 6, 7):
                if down:
                    scroll = self._pyautogui.scroll if button < 6 else self._pyautogui.hscroll
                    scroll(1 if button in (4, 7) else -1)
                return
            names = {1: "left", 2: "middle", 3: "right"}
            (self._pyautogui.mouseDown if down else self._pyautogui.mouseUp)(button=names[button])
            return
        self._fake(X.ButtonPress if down else X.ButtonRelease, button)

    def _click(self, xy: tuple[int, int], button: int = 1, count: int = 1) -> None:
        self._focus_at(xy)
        if self._pyautogui is not None:
            names = {1: "left", 2: "middle", 3: "right"}
            self._pyautogui.click(xy[0], xy[1], clicks=count, interval=0.03, button=names[button])
            return
        self._move(xy)
        for i in range(count):
            self._button(button, down=True)
            self._button(button, down=False)
            if i + 1 < count:
                time.sleep(0.03)

    def _drag(self, start: tuple[int, int] | None, end: tuple[int, int], seconds: float = 0.2) -> None:
        if start is not None:
            self._move(start)
        pointer = self._x.screen().root.query_pointer()
        sx, sy = (pointer.root_x, pointer.root_y) if start is None else start
        self._button(1, down=True)
        steps = 12
        for i in range(1, steps + 1):
            self._move((round(sx + (end[0] - sx) * i / steps), round(sy + (end[1] - sy) * i / steps)))
            time.sleep(seconds / steps)
        self._button(1, down=False)

    def _xdotool(self, *args: str) -> None:
        assert self._xdotool_exe is not None
        res = subprocess.run(
            [self._xdotool_exe, *args],
            env={**os.environ, "DISPLAY": self.display},
            capture_output=True,
            text=True,
            timeout=60,
        )
        if res.returncode != 0:
            raise DriverError(f"xdotool {args[0]} failed: {res.stderr.strip() or res.returncode}")

    def perform(self, action: A.Action) -> None:
        with self._boundary(f"perform {action.action}"):
            self._perform(action)

    def _perform(self, a: A.Action) -> None:
        match a:
            case A.Click():
                self._click(self._xy(a.at))
            case A.DoubleClick():
                self._click(self._xy(a.at), count=2)
            case A.TripleClick():
                self._click(self._xy(a.at), count=3)
            case A.RightClick():
                self._click(self._xy(a.at), button=3)
            case A.MiddleClick():
                self._click(self._xy(a.at), button=2)
            case A.MouseMove():
                self._move(self._xy(a.at))
            case A.Drag():
                self._drag(self._xy(a.start) if a.start else None, self._xy(a.end))
            case A.Swipe():
                self._drag(self._xy(a.start), self._xy(a.end), a.duration)
            case A.LongPress():
                self._move(self._xy(a.at))
                self._button(1, down=True)
                time.sleep(a.duration)
                self._button(1, down=False)
            case A.Scroll():
                if a.at is not None:
                    self._move(self._xy(a.at))
                for amount, neg, pos in ((a.dy, 4, 5), (a.dx, 6, 7)):
                    clicks = round(abs(amount) / self.scale / SCROLL_PX_PER_CLICK) or (1 if amount else 0)
                    for _ in range(clicks):
                        b = pos if amount > 0 else neg
                        self._button(b, down=True)
                        self._button(b, down=False)
            case A.Type() if self._pyautogui is not None:
                self._focus_new()
                for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]+", a.text):
                    if run.isascii():
                        self._pyautogui.write(run)
                    else:  # pyautogui drops what is not ASCII: xdotool types it on X
                        self._type_unicode(run)
            case A.Key() if self._pyautogui is not None:
                self._focus_new()
                self._pyautogui.hotkey(*pyautogui_keys(a.keys))
            case A.Type():
                self._focus_new()
                # characters outside the keymap go through a scratch keycode that xdotool remaps for
                # each one; typed faster than the application reads the new mapping (a busy machine:
                # 12 ms lost one), they are lost — so those go slowly, with a pause after the last
                for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]+", a.text):
                    if run.isascii():
                        self._xdotool("type", "--delay", "2", "--", run)
                    else:
                        self._type_unicode(run)
            case A.Key():
                self._focus_new()
                self._xdotool("key", "--clearmodifiers", xdotool_combo(a.keys))
            case A.SystemButton(button="Enter"):
                self._xdotool("key", "Return")
            case A.SystemButton(button="Back"):
                self._xdotool("key", "alt+Left")
            case A.Wait():
                time.sleep(a.seconds)
            case A.Answer() | A.Terminate():
                pass
            case _:
                raise DriverError(f"the desktop driver cannot perform {a.action!r} ({a})")
