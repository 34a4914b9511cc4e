"""The desktop driver: a real X display, screenshots with mss, input through the XTEST extension.

Headless by default: a private Xvfb is started and exported only to the programs this driver launches
(``d.launch([...])``); ``headless=False`` or ``display=":0"`` drives an existing screen. Mouse input goes
through python-xlib's XTEST on this driver's own connection (what pyautogui does underneath, but
pyautogui binds one global display at import, so two drivers could not run side by side); keys and
text go through ``xdotool``, which types any Unicode text (pyautogui silently drops non-ASCII).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from pixelpilot.drivers.base import Screen
from pixelpilot.drivers.procs import die_with_parent
from pixelpilot.drivers.xvfb import INSTALL_XVFB, VirtualDisplay
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["DesktopDriver"]

log = logging.getLogger(__name__)

SCROLL_PX_PER_CLICK = 100
"""Screen pixels one wheel click stands for (Scroll actions are in pixels)."""

_XDOTOOL_KEYS = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "alt": "alt",
    "option": "alt",
    "shift": "shift",
    "cmd": "super",
    "command": "super",
    "meta": "super",
    "super": "super",
    "win": "super",
    "enter": "Return",
    "return": "Return",
    "esc": "Escape",
    "escape": "Escape",
    "tab": "Tab",
    "backspace": "BackSpace",
    "delete": "Delete",
    "del": "Delete",
    "space": "space",
    "insert": "Insert",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "arrowup": "Up",
    "arrowdown": "Down",
    "arrowleft": "Left",
    "arrowright": "Right",
    "pageup": "Prior",
    "pagedown": "Next",
    "page_up": "Prior",
    "page_down": "Next",
    "home": "Home",
    "end": "End",
    "capslock": "Caps_Lock",
    "+": "plus",
    "-": "minus",
    "=": "equal",
    ",": "comma",
    ".": "period",
    "/": "slash",
    ";": "semicolon",
}


def xdotool_combo(keys: Sequence[str]) -> str:
    out = []
    for k in keys:
        low = k.lower()
        if low in _XDOTOOL_KEYS:
            out.append(_XDOTOOL_KEYS[low])
        elif len(low) in (2, 3) and low[0] == "f" and low[1:].isdigit():
            out.append(low.upper())
        else:
            out.append(k)
    return "+".join(out)


class DesktopDriver:
    """An X display. Use :meth:`start`; it is a context manager."""

    name = "desktop"
    action_space = "computer_use"
    capabilities = frozenset({"screenshot", "keyboard", "mouse", "launch", "settle"})

    def __init__(
        self,
        display: str,
        *,
        xvfb: VirtualDisplay | None = None,
        monitor: int | Sequence[int] = 1,
        scale: float = 1.0,
        frame_format: str = "jpeg",
    ) -> None:
        self.display = display
        self._xvfb = xvfb
        self.scale = scale
        self.frame_format = frame_format
        self._apps: list[tuple[list[str], subprocess.Popen[bytes], bool]] = []
        self._closed = False
        self._last_hash: int | None = None
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
    ) -> DesktopDriver:
        """A driver on a new private Xvfb (headless), or on ``display`` / ``$DISPLAY``.

        ``monitor``: which monitor to capture (1 = the first, as mss numbers them), or a region
        ``(left, top, width, height)`` of the screen; actions map into it."""
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
        try:
            driver = cls(display, xvfb=xvfb, monitor=monitor, scale=scale)
        except BaseException:
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
    ) -> subprocess.Popen[bytes]:
        """Start a program on this display (only it sees DISPLAY) and wait until the screen shows it."""
        self._check()
        before = self._grab_hash()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env={**os.environ, **(env or {}), "DISPLAY": self.display},
                stdin=subprocess.DEVNULL,
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

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _, proc, _ in self._apps:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in self._apps:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self._sct.close()
        with contextlib.suppress(Exception):
            self._x.close()
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
            if expect and rc is not None:
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
        return Screen.from_image(img, scale=self.scale, format=self.frame_format)

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

        self._fake(X.MotionNotify, xy=xy)

    def _button(self, button: int, *, down: bool) -> None:
        from Xlib import X

        self._fake(X.ButtonPress if down else X.ButtonRelease, button)

    def _click(self, xy: tuple[int, int], button: int = 1, count: int = 1) -> None:
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
            case A.Type():
                # characters outside the keymap go through a scratch keycode that xdotool remaps for
                # each one; typed faster than the application reads the new mapping (a busy machine:
                # 12 ms lost one), they are lost — so those go slowly, with a pause after the last
                for run in re.findall(r"[\x00-\x7f]+|[^\x00-\x7f]+", a.text):
                    if run.isascii():
                        self._xdotool("type", "--delay", "2", "--", run)
                    else:
                        self._xdotool("type", "--delay", "50", "--", run)
                        time.sleep(0.05)
            case A.Key():
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
