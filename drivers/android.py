"""The Android driver: adbutils against a phone or emulator through the adb server.

Screenshots come from ``screencap -p`` (a failure is an error, never a black frame), the UI tree from
``uiautomator dump`` (loaded only when a step needs it), input from ``input tap|swipe|keyevent``. Typed
text is verified by reading the focused field back: ``input text`` cannot type non-ASCII, so such text
goes through the ADBKeyBoard IME (https://github.com/senzhk/ADBKeyBoard) as a base64 broadcast.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import shlex
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from pixelpilot.drivers.base import Box, Screen, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError, DriverUnavailable
from pixelpilot.tools.images import PictureError, open_picture

__all__ = ["ADB_KEYBOARD", "AndroidDriver"]

log = logging.getLogger(__name__)

ADB_KEYBOARD = "com.android.adbkeyboard/.AdbIME"
INSTALL_ADB = "sudo apt-get install -y adb"
_KEYCODES = {
    "enter": 66,
    "return": 66,
    "back": 4,
    "home": 3,
    "menu": 82,
    "backspace": 67,
    "del": 67,
    "delete": 112,
    "tab": 61,
    "space": 62,
    "esc": 111,
    "escape": 111,
    "up": 19,
    "down": 20,
    "left": 21,
    "right": 22,
    "pageup": 92,
    "pagedown": 93,
    "search": 84,
    "power": 26,
    "volume_up": 24,
    "volume_down": 25,
    "camera": 27,
    "ctrl": 113,
    "shift": 59,
    "alt": 57,
    "clear": 28,
}
_SYSTEM = {"Back": 4, "Home": 3, "Menu": 82, "Enter": 66}
_ROLE = {
    "EditText": "textbox",
    "Button": "button",
    "ImageButton": "button",
    "CheckBox": "checkbox",
    "Switch": "switch",
    "RadioButton": "radio",
    "TextView": "text",
    "ImageView": "img",
    "ListView": "list",
    "RecyclerView": "list",
    "Spinner": "combobox",
    "SeekBar": "slider",
}
_BOUNDS = re.compile(r"\[(-?\d+),(-?\d+)\]\[(-?\d+),(-?\d+)\]")


def _keycode(name: str) -> str:
    low = name.lower()
    if low in _KEYCODES:
        return str(_KEYCODES[low])
    if low.startswith("keycode_") or low.isdigit():
        return name.upper()
    if len(name) == 1 and name.isalnum():
        return f"KEYCODE_{name.upper()}"
    return f"KEYCODE_{name.upper()}"


def _input_text_arg(text: str) -> str:
    """``input text`` quoting: spaces become %s, the rest is quoted for the device shell."""
    return shlex.quote(text.replace("%", "\\%").replace(" ", "%s"))


def parse_hierarchy(xml: str, scale: float = 1.0) -> list[UINode]:
    """uiautomator's XML as UI nodes (boxes in screenshot pixels)."""
    try:
        root = ET.fromstring(xml.encode("utf-8"))
    except ET.ParseError as exc:
        raise DriverError(f"the UI hierarchy from uiautomator is not valid XML: {exc}") from exc
    out: list[UINode] = []
    for i, n in enumerate(root.iter("node")):
        m = _BOUNDS.fullmatch(n.get("bounds", ""))
        if not m:
            continue
        x1, y1, x2, y2 = (int(v) for v in m.groups())
        if x2 <= x1 or y2 <= y1:
            continue
        cls = n.get("class", "").rsplit(".", 1)[-1]
        text, desc = n.get("text", ""), n.get("content-desc", "")
        role = _ROLE.get(cls, "text" if text else "view")
        clickable = n.get("clickable") == "true" or n.get("focusable") == "true" and role == "textbox"
        rid = n.get("resource-id", "")
        if not (text or desc or clickable or role == "textbox" or rid):
            continue
        out.append(
            UINode(
                ref=str(i),
                role=role,
                # a layout kept for its id only is a container: no name of its own
                name=text or desc or (rid.rsplit("/", 1)[-1] if clickable or role == "textbox" else ""),
                text=text,
                tag=rid,
                test_id=rid,
                enabled=n.get("enabled") != "false",
                placeholder=n.get("hint", ""),
                value=text if role == "textbox" else None,
                checked=(n.get("checked") == "true") if n.get("checkable") == "true" else None,
                interactive=clickable,
                focused=n.get("focused") == "true",
                box=Box(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale),
            )
        )
    return out


class AndroidDriver:
    """A device through the adb server. Use :meth:`connect`; it is a context manager."""

    name = "android"
    action_space = "mobile_use"
    capabilities = frozenset({"screenshot", "ui_tree", "touch", "keyboard", "apps", "settle"})

    def __init__(self, device: Any, *, where: str, scale: float = 1.0, verify_typing: bool = True) -> None:
        self._device = device
        self.serial: str = device.serial
        self.where = where
        self.scale = scale
        self.verify_typing = verify_typing
        self._selected = False
        """The last action selected the focused field's text (Ctrl+A): typing replaces it."""
        self._last_hash: int | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        serial: str | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        scale: float = 1.0,
        verify_typing: bool = True,
    ) -> AndroidDriver:
        """The only device, or the one named by ``serial`` / ``$ANDROID_SERIAL``, on the adb server at
        ``host:port`` (default ``$ANDROID_ADB_SERVER_HOST:$ANDROID_ADB_SERVER_PORT``, 127.0.0.1:5037)."""
        try:
            import adbutils
        except ImportError as exc:
            raise DriverUnavailable(
                "the Android driver needs adbutils", install="pip install 'pixelpilot[android]'"
            ) from exc
        host = host or os.environ.get("ANDROID_ADB_SERVER_HOST") or "127.0.0.1"
        port = int(port or os.environ.get("ANDROID_ADB_SERVER_PORT") or 5037)
        serial = serial or os.environ.get("ANDROID_SERIAL") or None
        where = f"{host}:{port}"
        client = adbutils.AdbClient(host=host, port=port)
        try:
            devices = [(d.serial, d.state) for d in client.list()]
        except (adbutils.AdbError, OSError) as exc:
            raise DriverUnavailable(
                f"no adb server answers at {where} ({exc})", install=f"{INSTALL_ADB}; adb start-server"
            ) from exc
        listing = ", ".join(f"{s} ({st})" for s, st in devices) or "none"
        if serial is None:
            if not devices:
                raise DriverUnavailable(
                    f"no Android device is connected to the adb server at {where}",
                    install="connect a phone with USB debugging on, or start an emulator",
                )
            if len(devices) > 1:
                raise DriverError(
                    f"several devices are connected ({listing}): choose one with serial= or ANDROID_SERIAL"
                )
            serial = devices[0][0]
        state = dict(devices).get(serial)
        if state is None:
            raise DriverError(f"no device {serial!r} on the adb server at {where}; connected: {listing}")
        if state == "unauthorized":
            raise DriverError(
                f"device {serial} is unauthorized: accept the 'Allow USB debugging' prompt on the device"
            )
        if state != "device":
            raise DriverError(
                f"device {serial} is {state}: reconnect it (adb reconnect) or restart the emulator"
            )
        return cls(client.device(serial), where=where, scale=scale, verify_typing=verify_typing)

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> AndroidDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _boundary(self, what: str) -> Iterator[None]:
        import adbutils

        if self._closed:
            raise DriverError("the Android driver is closed")
        try:
            yield
        except DriverError:
            raise
        except (adbutils.AdbError, OSError, EOFError) as exc:
            raise DriverError(
                f"lost the device {self.serial} (adb server {self.where}) while trying to {what}: {exc or type(exc).__name__}"
            ) from exc

    def _sh(self, cmd: str | Sequence[str], *, what: str) -> str:
        with self._boundary(what):
            res = self._device.shell2(cmd if isinstance(cmd, str) else shlex.join(cmd), timeout=30)
        if res.returncode != 0:
            raise DriverError(
                f"{what} failed on {self.serial} (exit {res.returncode}): {res.output.strip()[:300]}"
            )
        return str(res.output)

    # -- observe -----------------------------------------------------------------------------------
    def _screencap(self) -> bytes:
        with self._boundary("take a screenshot"):
            data = self._device.shell(["screencap", "-p"], encoding=None, timeout=30)
        if not data.startswith(b"\x89PNG"):
            raise DriverError(f"screencap on {self.serial} returned no PNG: {data[:200]!r}")
        return bytes(data)

    def observe(self, *, tree: bool = True) -> Screen:
        data = self._screencap()
        self._last_hash = zlib.crc32(data)
        try:
            img = open_picture(data, what=f"the screencap of {self.serial}")
        except PictureError as exc:
            raise DriverError(str(exc)) from exc
        if self.scale != 1:
            img = img.resize(
                (round(img.width * self.scale), round(img.height * self.scale)), Image.Resampling.BILINEAR
            )
            return (
                Screen.from_image(img, scale=self.scale, format="png")
                if not tree
                else Screen(
                    None, img.width, img.height, self.scale, format="png", image=img, tree_loader=self.ui_tree
                )
            )
        return Screen(
            data,
            img.width,
            img.height,
            self.scale,
            format="png",
            image=img,
            tree_loader=self.ui_tree if tree else None,
        )

    def ui_tree(self) -> list[UINode]:
        with self._boundary("read the UI hierarchy"):
            xml = self._device.dump_hierarchy()
        return parse_hierarchy(xml, self.scale)

    def focused_field(self) -> UINode | None:
        fields = [n for n in self.ui_tree() if n.focused and n.role == "textbox"]
        return fields[0] if fields else None

    # -- ElementDriver ----------------------------------------------------------------------------
    def hit_point(self, node: UINode) -> A.Point | None:
        return node.box.center

    def select_option(self, node: UINode, label: str) -> None:
        raise DriverError("dropdowns on Android are opened with a tap and closed by tapping the option")

    def settle(self, *, timeout: float = 3.0, quiet_ms: float = 150) -> dict[str, Any]:
        start = time.monotonic()
        prev = None
        while True:
            time.sleep(quiet_ms / 1000)
            cur = zlib.crc32(self._screencap())
            if cur == prev or time.monotonic() - start > timeout:
                break
            prev = cur
        changed = self._last_hash is None or cur != self._last_hash
        self._last_hash = cur
        return {"changed": changed, "waited_ms": (time.monotonic() - start) * 1000}

    # -- act ---------------------------------------------------------------------------------------
    def _px(self, p: A.Point) -> tuple[int, int]:
        return (round(p[0] / self.scale), round(p[1] / self.scale))

    def perform(self, action: A.Action) -> None:
        selected, self._selected = self._selected, False
        match action:
            case A.Click() | A.DoubleClick() | A.TripleClick():
                x, y = self._px(action.at)
                for _ in range({"double_click": 2, "triple_click": 3}.get(action.action, 1)):
                    self._sh(f"input tap {x} {y}", what="tap")
            case A.LongPress():
                x, y = self._px(action.at)
                self._sh(f"input swipe {x} {y} {x} {y} {round(action.duration * 1000)}", what="long press")
            case A.Swipe():
                (x1, y1), (x2, y2) = self._px(action.start), self._px(action.end)
                self._sh(
                    f"input swipe {x1} {y1} {x2} {y2} {max(1, round(action.duration * 1000))}", what="swipe"
                )
            case A.Drag():
                start = action.start or action.end
                (x1, y1), (x2, y2) = self._px(start), self._px(action.end)
                self._sh(f"input swipe {x1} {y1} {x2} {y2} 800", what="drag")
            case A.Scroll():
                w, h = self._device_size()
                cx, cy = self._px(action.at) if action.at else (w // 2, h // 2)
                dx, dy = round(action.dx / self.scale), round(action.dy / self.scale)
                self._sh(f"input swipe {cx} {cy} {cx - dx} {cy - dy} 300", what="scroll")
            case A.Type():
                self._type(action.text, replacing=selected)
            case A.Key():
                codes = [_keycode(k) for k in action.keys]
                if len(codes) == 1:
                    self._sh(f"input keyevent {codes[0]}", what="key event")
                elif [k.lower() for k in action.keys] == ["ctrl", "a"]:
                    self._select_all(codes)
                else:
                    self._sh("input keycombination " + " ".join(codes), what="key combination")
            case A.SystemButton():
                self._sh(f"input keyevent {_SYSTEM[action.button]}", what=f"press {action.button}")
            case A.OpenApp():
                out = self._sh_rc(
                    ["monkey", "-p", action.app, "-c", "android.intent.category.LAUNCHER", "1"],
                    what=f"open {action.app}",
                )
                if out[1] != 0 or "No activities found" in out[0]:
                    raise DriverError(
                        f"cannot open {action.app!r} on {self.serial}: is it installed? ({out[0].strip()[:200]})"
                    )
            case A.Wait():
                time.sleep(action.seconds)
            case A.Answer() | A.Terminate():
                pass
            case _:
                raise DriverError(f"the Android driver cannot perform {action.action!r} ({action})")

    def _sh_rc(self, cmd: Sequence[str], *, what: str) -> tuple[str, int]:
        with self._boundary(what):
            res = self._device.shell2(shlex.join(cmd), timeout=60)
        return str(res.output), int(res.returncode)

    def _device_size(self) -> tuple[int, int]:
        with self._boundary("read the screen size"):
            ws = self._device.window_size()
        return (ws.width, ws.height)

    def _select_all(self, codes: Sequence[str]) -> None:
        """Ctrl+A: select the focused field's text, so that what is typed next replaces it. Android 13+
        takes the combination; before that ``input`` has no keycombination, and the text is deleted
        instead (to its end, then as many DELs as it holds) — the same field once typing follows."""
        try:
            self._sh("input keycombination " + " ".join(codes), what="key combination")
        except DriverError as exc:
            if "Unknown command" not in str(exc):
                raise
            field = self.focused_field()
            held = len(field.value or "") if field is not None else 0
            self._sh("input keyevent KEYCODE_MOVE_END", what="move to the end of the field")
            if held:
                self._sh("input keyevent " + " ".join(["KEYCODE_DEL"] * held), what="delete the field's text")
        self._selected = True

    # -- typing, verified --------------------------------------------------------------------------
    def _type(self, text: str, *, replacing: bool = False) -> None:
        """Type ``text`` and check that the focused field holds what it should (what it held and
        ``text``, or ``text`` alone when ``replacing`` the selected text)."""
        if not text:
            return
        before = self.focused_field() if self.verify_typing else None
        self._send_text(text)
        if before is None:
            return
        expected = text if replacing else (before.value or "") + text
        after = self.focused_field()
        got = after.value if after is not None else None
        if got == expected or got is None:
            return
        if expected.startswith(got or ""):  # part of it went missing: send the rest once more
            log.info("typed %r but the field holds %r; typing the rest again", text, got)
            self._send_text(expected[len(got or "") :])
            after = self.focused_field()
            got = after.value if after is not None else None
            if got == expected:
                return
        raise DriverError(
            f"typed {text!r} on {self.serial}, but the focused field holds {got!r} (expected {expected!r})"
        )

    def _send_text(self, text: str) -> None:
        if text.isascii() and text.isprintable():
            self._sh(f"input text {_input_text_arg(text)}", what="type text")
            return
        self._broadcast_text(text)

    def _broadcast_text(self, text: str) -> None:
        imes = self._sh("ime list -s", what="list input methods")
        if ADB_KEYBOARD not in imes.split():
            raise DriverError(
                f"typing non-ASCII text ({text!r}) needs the ADBKeyBoard input method on {self.serial}, "
                "because `input text` cannot: install it (https://github.com/senzhk/ADBKeyBoard, adb install ADBKeyboard.apk)"
            )
        current = self._sh("settings get secure default_input_method", what="read the input method").strip()
        if current != ADB_KEYBOARD:
            self._sh(f"ime set {ADB_KEYBOARD}", what="switch to ADBKeyBoard")
        try:
            b64 = base64.b64encode(text.encode("utf-8")).decode()
            self._sh(f"am broadcast -a ADB_INPUT_B64 --es msg {b64}", what="type through ADBKeyBoard")
        finally:
            if current and current != ADB_KEYBOARD and current != "null":
                self._sh(f"ime set {current}", what="restore the input method")
