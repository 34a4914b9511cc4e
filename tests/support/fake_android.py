"""A fake Android phone in memory: its screen and uiautomator hierarchy are rendered from its own state;
taps change it, text lands in the focused field, swipes scroll the list, Back and Home change screens.
Its ``shell`` answers the commands a phone answers. Served over the adb protocol by
:mod:`tests.support.fake_adb`.
"""

from __future__ import annotations

import base64
import io
import shlex
import threading
from dataclasses import dataclass, field
from xml.sax.saxutils import quoteattr

from PIL import Image, ImageDraw, ImageFont

W, H = 1080, 1920
KEYCODES = {
    "3": "HOME",
    "4": "BACK",
    "66": "ENTER",
    "82": "MENU",
    "67": "DEL",
    "KEYCODE_HOME": "HOME",
    "KEYCODE_BACK": "BACK",
    "KEYCODE_ENTER": "ENTER",
    "KEYCODE_MENU": "MENU",
    "KEYCODE_DEL": "DEL",
    "113": "CTRL_LEFT",
    "KEYCODE_CTRL_LEFT": "CTRL_LEFT",
    "29": "A",
    "KEYCODE_A": "A",
    "112": "FORWARD_DEL",
    "KEYCODE_MOVE_END": "MOVE_END",
    "123": "MOVE_END",
}
ADB_KEYBOARD = "com.android.adbkeyboard/.AdbIME"
LATIN_IME = "com.android.inputmethod.latin/.LatinIME"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default()


@dataclass
class Node:
    text: str
    bounds: tuple[int, int, int, int]
    cls: str = "android.widget.TextView"
    rid: str = ""
    desc: str = ""
    clickable: bool = False
    focused: bool = False
    scrollable: bool = False
    hint: str = ""


@dataclass
class FakeDevice:
    """An Android phone in memory. ``events`` records what the device saw (for tests)."""

    serial: str
    state: str = "device"
    """device, unauthorized or offline."""
    model: str = "Pixel_Fake"
    packages: tuple[str, ...] = ("com.example.notes", "com.android.settings")
    adb_keyboard: bool = True
    screen: str = "home"
    stack: list[str] = field(default_factory=list)
    title: str = ""
    focused: str | None = None
    sdk: int = 34
    """Android's API level: `input keycombination` exists from 33 (Android 13)."""
    selected_all: bool = False
    """Ctrl+A selected the focused field's text."""
    list_offset: int = 0
    saved: list[str] = field(default_factory=list)
    wifi: bool = False
    rotation: int = 0
    ime: str = LATIN_IME
    drop_text_after: int | None = None
    """Fault: the next text input keeps only this many characters (a keyboard that lost some)."""
    mangle_text: bool = False
    """Fault: typed text arrives upper-cased (an IME with caps lock stuck)."""
    events: list[tuple[str, ...]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what is on screen --------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return (H, W) if self.rotation % 2 else (W, H)

    def nodes(self) -> list[Node]:
        w, h = self.size
        out = [Node(f"{self.screen}", (0, 0, w, 120), rid="android:id/title")]
        if self.screen == "home":
            out += [
                Node("Notes", (80, 300, 460, 460), clickable=True, desc="Notes app"),
                Node("Settings", (620, 300, 1000, 460), clickable=True, desc="Settings app"),
            ]
        elif self.screen == "notes":
            if self.saved:
                out.append(
                    Node(
                        f"Saved: {self.saved[-1]}", (60, 1740, w - 60, 1860), rid="com.example.notes:id/toast"
                    )
                )
            out += [
                Node(
                    self.title,
                    (60, 180, w - 60, 300),
                    cls="android.widget.EditText",
                    rid="com.example.notes:id/title",
                    clickable=True,
                    focused=self.focused == "title",
                    hint="Title",
                ),
                Node(
                    "Save",
                    (60, 340, 400, 460),
                    cls="android.widget.Button",
                    rid="com.example.notes:id/save",
                    clickable=True,
                ),
            ]
            for i in range(8):
                n = self.list_offset + i + 1
                if n <= 40:
                    out.append(
                        Node(
                            f"Note {n}",
                            (60, 520 + i * 150, w - 60, 650 + i * 150),
                            rid="com.example.notes:id/item",
                            clickable=True,
                        )
                    )
            out.append(
                Node(
                    "",
                    (60, 520, w - 60, 1720),
                    cls="android.widget.ListView",
                    rid="com.example.notes:id/list",
                    scrollable=True,
                )
            )
        elif self.screen == "settings":
            out += [
                Node(
                    "Wi-Fi: on" if self.wifi else "Wi-Fi: off",
                    (60, 200, w - 60, 330),
                    cls="android.widget.Switch",
                    clickable=True,
                )
            ]
        return out

    def render(self) -> bytes:
        w, h = self.size
        img = Image.new("RGB", (w, h), "#ffffff")
        d = ImageDraw.Draw(img)
        big, small = _font(56), _font(44)
        for n in self.nodes():
            x1, y1, x2, y2 = n.bounds
            if n.cls == "android.widget.ListView" or not (n.text or n.desc or n.hint):
                continue
            if n.rid == "android:id/title":
                d.rectangle(n.bounds, fill="#3949ab")
                d.text((40, 30), n.text.capitalize(), fill="white", font=big)
                continue
            fill = {
                "android.widget.Button": "#c5cae9",
                "android.widget.EditText": "#fafafa",
                "android.widget.Switch": "#e8eaf6",
            }.get(n.cls, "#eeeeee")
            d.rectangle(
                n.bounds,
                fill=fill,
                outline="#1a237e" if n.focused else "#9e9e9e",
                width=6 if n.focused else 2,
            )
            d.text(
                (x1 + 24, y1 + (y2 - y1) // 2 - 26),
                n.text or n.hint,
                fill="#000000" if n.text else "#9e9e9e",
                font=small,
            )
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()

    def hierarchy(self) -> str:
        rows = []
        for i, n in enumerate(self.nodes()):
            x1, y1, x2, y2 = n.bounds
            rows.append(
                f'<node index="{i}" text={quoteattr(n.text)} resource-id="{n.rid}" class="{n.cls}" package="com.example" '
                f'content-desc={quoteattr(n.desc)} hint={quoteattr(n.hint)} checkable="false" checked="false" clickable="{str(n.clickable).lower()}" '
                f'enabled="true" focusable="{str(n.clickable).lower()}" focused="{str(n.focused).lower()}" '
                f'scrollable="{str(n.scrollable).lower()}" long-clickable="false" password="false" selected="false" '
                f'bounds="[{x1},{y1}][{x2},{y2}]" />'
            )
        w, h = self.size
        return (
            f"<?xml version='1.0' encoding='UTF-8' standalone='yes' ?><hierarchy rotation=\"{self.rotation}\">"
            '<node index="0" text="" resource-id="" class="android.widget.FrameLayout" package="com.example" '
            f'content-desc="" bounds="[0,0][{w},{h}]">{"".join(rows)}</node></hierarchy>'
        )

    # -- input --------------------------------------------------------------------------------------
    def _go(self, screen: str) -> None:
        self.stack.append(self.screen)
        self.screen = screen
        self.focused = None

    def tap(self, x: int, y: int) -> None:
        self.events.append(("tap", str(x), str(y)))
        for n in self.nodes():
            x1, y1, x2, y2 = n.bounds
            if not (n.clickable and x1 <= x <= x2 and y1 <= y <= y2):
                continue
            if self.screen == "home":
                self._go("notes" if n.text == "Notes" else "settings")
            elif n.rid.endswith(":id/title"):
                self.focused = "title"
            elif n.text == "Save":
                self.saved.append(self.title)
                self.events.append(("saved", self.title))
            elif n.text.startswith("Note "):
                self.events.append(("open", n.text))
            elif n.cls == "android.widget.Switch":
                self.wifi = not self.wifi
            return
        self.focused = None

    def swipe(self, x1: int, y1: int, x2: int, y2: int, ms: int) -> None:
        self.events.append(("swipe", str(x1), str(y1), str(x2), str(y2), str(ms)))
        if abs(x2 - x1) < 10 and abs(y2 - y1) < 10 and ms >= 500:
            self.events.append(("long_press", str(x1), str(y1)))
            return
        if self.screen == "notes":
            rows = round((y1 - y2) / 150)
            self.list_offset = max(0, min(32, self.list_offset + rows))

    def key(self, name: str) -> None:
        self.events.append(("key", name))
        if name == "BACK" and self.stack:
            self.screen = self.stack.pop()
            self.focused = None
        elif name == "HOME":
            self.stack, self.screen, self.focused = [], "home", None
        elif name == "DEL" and self.focused == "title":
            self.title = "" if self.selected_all else self.title[:-1]
            self.selected_all = False
        elif name == "ENTER" and self.focused == "title":
            self.focused = None

    def combination(self, keys: list[str]) -> None:
        """Ctrl+A selects the focused field's text (as an EditText does); what is typed or deleted
        next replaces it."""
        self.events.append(("combination", "+".join(keys)))
        if set(keys) >= {"CTRL_LEFT", "A"} and self.focused == "title":
            self.selected_all = True

    def type_text(self, text: str) -> None:
        if self.drop_text_after is not None:
            text, self.drop_text_after = text[: self.drop_text_after], None
        if self.mangle_text:
            text = text.upper()
        self.events.append(("text", text))
        if self.focused == "title":
            self.title = text if self.selected_all else self.title + text
            self.selected_all = False

    def open_app(self, package: str) -> bool:
        if package not in self.packages:
            return False
        self._go({"com.example.notes": "notes", "com.android.settings": "settings"}[package])
        return True

    # -- the shell ----------------------------------------------------------------------------------
    def shell(self, cmdline: str) -> tuple[bytes, int]:
        """Run a (tiny) sh command line: ``;`` and ``&&`` lists of the commands a phone answers."""
        out = b""
        rc = 0
        for part in _split_list(cmdline):
            op, cmd = part
            if op == "&&" and rc != 0:
                continue
            o, rc = self._command(cmd, rc)
            out += o
        return out, rc

    def _command(self, cmd: str, last_rc: int) -> tuple[bytes, int]:
        try:
            argv = shlex.split(cmd)
        except ValueError:
            return b"/system/bin/sh: syntax error\n", 2
        if not argv:
            return b"", 0
        with self.lock:
            return self._run(argv, last_rc)

    def _run(self, argv: list[str], last_rc: int) -> tuple[bytes, int]:  # noqa: PLR0911, PLR0912 - one branch per command
        name, args = argv[0], argv[1:]
        if name == "echo":
            return (" ".join(args).replace("$?", str(last_rc)) + "\n").encode(), 0
        if name == "screencap":
            return self.render(), 0
        if name == "wm" and args[:1] == ["size"]:
            return f"Physical size: {W}x{H}\n".encode(), 0
        if name == "dumpsys" and args[:1] == ["display"]:
            return (
                f'  mDisplayInfos=\n    DisplayInfo{{"Built-in Screen", real {W} x {H}, orientation={self.rotation}}}\n'.encode(),
                0,
            )
        if name == "getprop":
            props = {
                "ro.product.model": self.model,
                "ro.build.version.sdk": str(self.sdk),
                "ro.serialno": self.serial,
            }
            return (props.get(args[0], "") + "\n").encode() if args else b"", 0
        if name == "rm":
            for a in args:
                self.files.pop(a, None)
            return b"", 0
        if name == "uiautomator" and args[:1] == ["dump"]:
            target = args[1] if len(args) > 1 else "/sdcard/window_dump.xml"
            self.files[target] = self.hierarchy().encode()
            return f"UI hierchary dumped to: {target}\n".encode(), 0
        if name == "input" and args:
            sub = args[0]
            if sub == "tap":
                self.tap(int(float(args[1])), int(float(args[2])))
            elif sub == "swipe":
                x1, y1, x2, y2 = (int(float(a)) for a in args[1:5])
                self.swipe(x1, y1, x2, y2, int(args[5]) if len(args) > 5 else 300)
            elif sub == "text":
                raw = " ".join(args[1:])
                if not raw.isascii():
                    return b"", 0  # real `input text` silently mangles non-ASCII; the fake drops it
                self.type_text(raw.replace("%s", " "))
            elif sub == "keyevent":
                for k in args[1:]:
                    self.key(KEYCODES.get(k, k))
            elif sub == "keycombination" and self.sdk >= 33:  # Android 13+: keys held together
                self.combination([KEYCODES.get(k, k) for k in args[1:]])
            else:
                return f"Unknown command: {sub}\n".encode(), 1
            return b"", 0
        if name == "am" and args[:1] == ["broadcast"]:
            action = args[args.index("-a") + 1] if "-a" in args else ""
            msg = args[args.index("--es") + 2] if "--es" in args else ""
            if self.ime != ADB_KEYBOARD:
                return (
                    b"Broadcasting: Intent { act=%s }\nBroadcast completed: result=0\n" % action.encode(),
                    0,
                )
            if action == "ADB_INPUT_B64":
                self.type_text(base64.b64decode(msg).decode("utf-8"))
            elif action == "ADB_INPUT_TEXT":
                self.type_text(msg)
            return b"Broadcasting: Intent { act=%s }\nBroadcast completed: result=-1\n" % action.encode(), 0
        if name == "ime":
            if args[:2] == ["list", "-s"]:
                imes = [LATIN_IME] + ([ADB_KEYBOARD] if self.adb_keyboard else [])
                return ("\n".join(imes) + "\n").encode(), 0
            if args[:1] == ["set"] and len(args) > 1:
                if args[1] == ADB_KEYBOARD and not self.adb_keyboard:
                    return f"Unknown input method {args[1]} cannot be selected for user #0\n".encode(), 255
                self.ime = args[1]
                return f"Input method {args[1]} selected for user #0\n".encode(), 0
        if name == "settings" and args[:3] == ["get", "secure", "default_input_method"]:
            return (self.ime + "\n").encode(), 0
        if name == "pm" and args[:2] == ["list", "packages"]:
            pkgs = list(self.packages) + (["com.android.adbkeyboard"] if self.adb_keyboard else [])
            flt = args[2] if len(args) > 2 else ""
            return "".join(f"package:{p}\n" for p in pkgs if flt in p).encode(), 0
        if name == "monkey" and "-p" in args:
            pkg = args[args.index("-p") + 1]
            if self.open_app(pkg):
                return b"Events injected: 1\n", 0
            return b"** No activities found to run, monkey aborted.\n", 251
        return f"/system/bin/sh: {name}: inaccessible or not found\n".encode(), 127


def _split_list(cmdline: str) -> list[tuple[str, str]]:
    """Split an sh list at ; and && outside quotes: [(op_before, command), ...]."""
    parts: list[tuple[str, str]] = []
    cur, op, quote, i = "", ";", None, 0
    while i < len(cmdline):
        c = cmdline[i]
        if quote:
            cur += c
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur += c
        elif c == ";":
            parts.append((op, cur.strip()))
            cur, op = "", ";"
        elif cmdline.startswith("&&", i):
            parts.append((op, cur.strip()))
            cur, op = "", "&&"
            i += 1
        else:
            cur += c
        i += 1
    parts.append((op, cur.strip()))
    return [p for p in parts if p[1]]
