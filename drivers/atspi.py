"""The desktop's accessibility tree (AT-SPI 2) as the desktop driver's UI tree.

GTK, Qt, LibreOffice, Firefox and Chromium publish their widgets over AT-SPI, a set of D-Bus interfaces on
the *accessibility bus*. This module talks those interfaces directly with ``jeepney`` (a pure-Python D-Bus
client: it installs in any virtual environment, where pyatspi — which lives in Debian's own Python through
python3-gi — does not, and PyGObject from PyPI needs a C toolchain and GObject headers to build).

- :class:`AccessibilityBus` starts what a private X display lacks: a session D-Bus and the AT-SPI bus
  launcher (Debian's ``dbus`` and ``at-spi2-core``), and gives the environment that makes GTK and Qt
  applications publish their tree on it.
- :class:`AtspiTree` reads the tree of chosen applications: names, roles, states, boxes in screen pixels,
  the text and values of fields and the label relations. Calls go out a whole tree level at a time
  (pipelined on one connection), so a window of a hundred widgets reads in a few round trips.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pixelpilot.drivers.base import Box, UINode
from pixelpilot.drivers.procs import die_with_parent, stop_groups
from pixelpilot.tools.errors import DriverError, DriverUnavailable

__all__ = ["INSTALL_ATSPI", "AccessibilityBus", "AtspiNode", "AtspiTree", "a11y_env", "ui_nodes"]

log = logging.getLogger(__name__)

INSTALL_ATSPI = "sudo apt-get install -y dbus at-spi2-core libatk-adaptor"

ACCESSIBLE = "org.a11y.atspi.Accessible"
REGISTRY = "org.a11y.atspi.Registry"
ROOT = "/org/a11y/atspi/accessible/root"
LAUNCHERS = ("/usr/libexec/at-spi-bus-launcher", "/usr/lib/at-spi2-core/at-spi-bus-launcher")

# AtspiStateType bit numbers (at-spi2-core atspi-constants.h)
ST_ACTIVE, ST_CHECKED, ST_EDITABLE, ST_ENABLED, ST_FOCUSABLE, ST_FOCUSED, ST_MODAL = 1, 4, 7, 8, 11, 12, 16
ST_SENSITIVE, ST_SHOWING, ST_VISIBLE = 24, 25, 30
REL_LABEL_FOR, REL_LABELLED_BY = 1, 2

DIALOG_ROLES = ("dialog", "file chooser", "alert")
"""Window roles of dialogs (drawn over the window that opened them)."""

ROLES = {
    "push button": "button",
    "toggle button": "button",
    "button": "button",
    "entry": "textbox",
    "password text": "textbox",
    "spin button": "spinbutton",
    "combo box": "combobox",
    "check box": "checkbox",
    "check menu item": "menuitemcheckbox",
    "radio button": "radio",
    "radio menu item": "menuitemradio",
    "menu": "menu",
    "menu item": "menuitem",
    "menu bar": "menubar",
    "page tab": "tab",
    "page tab list": "tablist",
    "link": "link",
    "list item": "listitem",
    "table cell": "cell",
    "tree item": "treeitem",
    "dialog": "dialog",
    "file chooser": "dialog",
    "alert": "alert",
    "frame": "window",
    "slider": "slider",
    "heading": "heading",
    "icon": "img",
    "image": "img",
    "tool bar": "toolbar",
    "status bar": "status",
    "scroll bar": "scrollbar",
    "table": "table",
    "tree table": "table",
    "list": "list",
    "list box": "listbox",
    "table row": "row",
    "form": "form",
}
SCOPES = {
    "window",
    "dialog",
    "alert",
    "toolbar",
    "status",
    "tablist",
    "menu",
    "menubar",
    "table",
    "list",
    "listbox",
    "row",
    "form",
}
"""Roles kept in the tree without a name: a locator scopes by them (``inside: {role: dialog}``)."""
"""AT-SPI role names onto the ARIA-like roles the locator chain speaks (others become "text")."""

INTERACTIVE = {
    "button",
    "textbox",
    "spinbutton",
    "combobox",
    "checkbox",
    "menuitemcheckbox",
    "radio",
    "menuitemradio",
    "menu",
    "menuitem",
    "tab",
    "link",
    "listitem",
    "cell",
    "treeitem",
    "slider",
}


COMPONENT = "org.a11y.atspi.Component"
SCROLL_ANYWHERE = 6

MENU_ROLES = {"menu", "popup menu"}
"""Containers whose showing items are an open menu (GTK: a menu bar's "menu"; Qt: a "popup menu")."""


def a11y_env() -> dict[str, str]:
    """What makes GTK 3 and Qt 5/6 applications publish their accessibility tree."""
    return {
        "NO_AT_BRIDGE": "0",
        "GTK_MODULES": "gail:atk-bridge",
        "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1",
        "QT_ACCESSIBILITY": "1",
    }


class AccessibilityBus:
    """A session D-Bus and the AT-SPI bus for one X display (a private Xvfb has neither)."""

    def __init__(self, display: str) -> None:
        self.display = display
        self.address: str | None = None
        """The session bus's address (``DBUS_SESSION_BUS_ADDRESS`` for the apps)."""
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 10.0) -> dict[str, str]:
        """Start both buses; returns the environment for applications launched on the display."""
        daemon = shutil.which("dbus-daemon")
        launcher = next((p for p in LAUNCHERS if os.path.exists(p)), None)
        if daemon is None or launcher is None:
            missing = "dbus-daemon" if daemon is None else "at-spi-bus-launcher"
            raise DriverUnavailable(
                f"{missing} is not installed (the desktop's accessibility tree)", install=INSTALL_ATSPI
            )
        env = {**os.environ, "DISPLAY": self.display}
        bus = subprocess.Popen(
            [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )
        self._procs.append(bus)
        assert bus.stdout is not None
        line = bus.stdout.readline().decode().strip()
        if not line:
            self.stop()
            raise DriverError(
                f"the session D-Bus for {self.display} did not start (dbus-daemon exited {bus.poll()})"
            )
        self.address = line
        env["DBUS_SESSION_BUS_ADDRESS"] = line
        self._procs.append(
            subprocess.Popen(
                [launcher, "--launch-immediately"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(signal.SIGTERM),
            )
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                start_registry(a11y_address(line))
                enable_accessibility(line)
                break
            except DriverError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)
        return {"DBUS_SESSION_BUS_ADDRESS": line, **a11y_env()}

    def stop(self) -> None:
        """Stop both buses and what they started (the AT-SPI registry), nothing left running."""
        stop_groups(self._procs[::-1])
        for proc in self._procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


def _connect(address: str) -> Any:
    from jeepney.io.blocking import open_dbus_connection

    try:
        return open_dbus_connection(bus=address)
    except (OSError, ValueError) as exc:
        raise DriverError(f"cannot connect to the D-Bus at {address}: {exc}") from exc


def _ask(address: str, msg: Any, failure: str, *, check: bool = True) -> Any:
    """One call on the bus at ``address`` (a connection of its own), its reply's body; ``failure`` says
    what went wrong when no answer comes (or, with ``check``, an error does)."""
    from jeepney import MessageType

    conn = _connect(address)
    try:
        reply = conn.send_and_get_reply(msg, timeout=5)
    except TimeoutError as exc:
        raise DriverError(failure) from exc
    finally:
        conn.close()
    if check and reply.header.message_type != MessageType.method_return:
        raise DriverError(f"{failure}: {reply.body[0] if reply.body else reply}")
    return reply.body


def start_registry(a11y: str) -> None:
    """Have the AT-SPI registry running before any application starts: it is started on demand (D-Bus
    activation) by the first call, and a Qt application that announces itself before it runs is never
    listed."""
    from jeepney import DBusAddress, new_method_call

    msg = new_method_call(DBusAddress(ROOT, REGISTRY, ACCESSIBLE), "GetChildren")
    _ask(a11y, msg, "the AT-SPI registry did not start")


def enable_accessibility(session_address: str) -> None:
    """Say on the session bus that assistive technology is on (``org.a11y.Status.IsEnabled``), as a
    desktop does when a screen reader starts: Qt applications publish their tree only then."""
    from jeepney import DBusAddress, Properties

    status = Properties(DBusAddress("/org/a11y/bus", "org.a11y.Bus", "org.a11y.Status"))
    _ask(session_address, status.set("IsEnabled", "b", True), "org.a11y.Status did not answer", check=False)


def a11y_address(session_address: str) -> str:
    """The accessibility bus's address, asked of ``org.a11y.Bus`` on the session bus."""
    from jeepney import DBusAddress, new_method_call

    msg = new_method_call(DBusAddress("/org/a11y/bus", "org.a11y.Bus", "org.a11y.Bus"), "GetAddress")
    return str(_ask(session_address, msg, "no AT-SPI bus on the session bus")[0])


@dataclass
class AtspiNode:
    """One accessible object as read: where it lives on the bus and what it says of itself."""

    bus: str
    path: str
    role_name: str = ""
    name: str = ""
    states: int = 0
    extents: tuple[int, int, int, int] | None = None
    children: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    labelled_by: list[tuple[str, str]] = field(default_factory=list)
    label_for: bool = False
    window: tuple[str, str] | None = None
    """The top-level window (a child of the application object) this object is in."""

    def has(self, state: int) -> bool:
        return bool(self.states >> state & 1)


class AtspiTree:
    """Reads the accessibility tree of the applications on one AT-SPI bus."""

    MAX_NODES = 4000

    def __init__(self, session_address: str) -> None:
        self._conn = _connect(a11y_address(session_address))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    # -- the wire ------------------------------------------------------------------------------------
    def _calls(self, calls: list[tuple[str, str, str, str, str | None, tuple[Any, ...]]]) -> list[Any]:
        """Send every call at once, then collect the replies: a body, or None for an error reply."""
        from jeepney import DBusAddress, HeaderFields, MessageType, new_method_call

        pending: dict[int, int] = {}
        for i, (bus, path, iface, method, sig, body) in enumerate(calls):
            msg = new_method_call(DBusAddress(path, bus, iface), method, sig, body)
            serial = next(self._conn.outgoing_serial)
            self._conn.send(msg, serial=serial)
            pending[serial] = i
        out: list[Any] = [None] * len(calls)
        deadline = time.monotonic() + 10
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DriverError(f"the accessibility bus did not answer {len(pending)} calls within 10 s")
            try:
                msg = self._conn.receive(timeout=left)
            except TimeoutError:
                continue
            i = pending.pop(msg.header.fields.get(HeaderFields.reply_serial, -1), -1)
            if i >= 0 and msg.header.message_type == MessageType.method_return:
                out[i] = msg.body
        return out

    def applications(self) -> list[tuple[str, str, int | None]]:
        """The applications on the bus: (bus name, path, process id)."""
        (kids,) = self._calls([(REGISTRY, ROOT, ACCESSIBLE, "GetChildren", None, ())])
        apps = [tuple(k) for k in (kids[0] if kids else [])]
        pids = self._calls(
            [
                (
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID",
                    "s",
                    (bus,),
                )
                for bus, _ in apps
            ]
        )
        return [(b, p, (pid[0] if pid else None)) for (b, p), pid in zip(apps, pids, strict=True)]

    def read(self, roots: Iterable[tuple[str, str]]) -> list[AtspiNode]:
        """Every showing object under ``roots`` (application objects), breadth first."""
        props = "org.freedesktop.DBus.Properties"
        nodes: list[AtspiNode] = []
        level = [AtspiNode(b, p) for b, p in roots]
        depth = 0
        while level and len(nodes) < self.MAX_NODES:
            calls: list[tuple[str, str, str, str, str | None, tuple[Any, ...]]] = []
            # an application object has no place on the screen: asking it makes GTK log a CRITICAL
            where = ("GetChildren", None) if depth == 0 else ("GetExtents", "u")
            for n in level:
                calls += [
                    (n.bus, n.path, props, "Get", "ss", (ACCESSIBLE, "Name")),
                    (n.bus, n.path, ACCESSIBLE, "GetRoleName", None, ()),
                    (n.bus, n.path, ACCESSIBLE, "GetState", None, ()),
                    (
                        n.bus,
                        n.path,
                        ACCESSIBLE if depth == 0 else COMPONENT,
                        where[0],
                        where[1],
                        () if depth == 0 else (0,),
                    ),
                    (n.bus, n.path, ACCESSIBLE, "GetChildren", None, ()),
                ]
            replies = self._calls(calls)
            nxt: list[AtspiNode] = []
            for k, n in enumerate(level):
                name, role, state, ext, kids = replies[5 * k : 5 * k + 5]
                n.name = " ".join(str(name[0][1]).split()) if name else ""  # menu items pad with spaces
                n.role_name = str(role[0]) if role else ""
                if state:
                    lo, hi = (list(state[0]) + [0, 0])[:2]
                    n.states = int(lo) | int(hi) << 32
                n.extents = tuple(int(v) for v in ext[0]) if ext and depth else None  # type: ignore[assignment]
                n.children = [(str(c[0]), str(c[1])) for c in kids[0]] if kids else []
                # an application object is not "showing"; below it, only what is shown is read on
                if depth == 0 or n.has(ST_SHOWING):
                    nodes.append(n)
                    nxt += [
                        AtspiNode(b, p, window=n.window if depth else (b, p))
                        for b, p in n.children
                        if p != "/org/a11y/atspi/null"
                    ]
            level = nxt[: max(0, self.MAX_NODES - len(nodes))]
            depth += 1
        self._details([n for n in nodes if n.has(ST_SHOWING)])
        return nodes

    def scroll_to(self, bus: str, path: str) -> bool:
        """Ask the toolkit to scroll the object into view (``Component.ScrollTo``, AT-SPI 2.30; GTK 3
        and Qt before 6.5 do not have it): whether it did."""
        (reply,) = self._calls([(bus, path, COMPONENT, "ScrollTo", "u", (SCROLL_ANYWHERE,))])
        return bool(reply and reply[0])

    def _details(self, nodes: list[AtspiNode]) -> None:
        """The text of text objects and labels' relations, in one more round."""
        textual = [n for n in nodes if n.role_name in ("text", "entry", "password text", "spin button")]
        calls: list[tuple[str, str, str, str, str | None, tuple[Any, ...]]] = []
        for n in textual:
            calls.append((n.bus, n.path, "org.a11y.atspi.Text", "GetText", "ii", (0, -1)))
        related = [n for n in nodes if n.role_name in ("label", "text", *ROLES)]
        for n in related:
            calls.append((n.bus, n.path, ACCESSIBLE, "GetRelationSet", None, ()))
        replies = self._calls(calls)
        for n, r in zip(textual, replies[: len(textual)], strict=True):
            n.text = str(r[0]) if r else None
        for n, r in zip(related, replies[len(textual) :], strict=True):
            for kind, targets in r[0] if r else []:
                if kind == REL_LABELLED_BY:
                    n.labelled_by += [(str(t[0]), str(t[1])) for t in targets]
                elif kind == REL_LABEL_FOR:
                    n.label_for = True


Rect = tuple[int, int, int, int]
"""x0, y0, x1, y1 in screen pixels."""


def shown_parts(nodes: list[AtspiNode]) -> dict[tuple[str, str], Rect | None]:
    """The part of each object its containers show (a scrolled panel shows part of what it holds):
    its extents cut by every container's up to its window; None where nothing says where it is."""
    by_key = {(n.bus, n.path): n for n in nodes}
    parent = {child: (n.bus, n.path) for n in nodes for child in n.children}
    shown: dict[tuple[str, str], Rect | None] = {}

    def visible(key: tuple[str, str]) -> Rect | None:
        if key not in shown:
            n = by_key.get(key)
            own = None
            if n is not None and n.extents is not None and n.extents[2] > 0 and n.extents[3] > 0:
                x, y, w, h = n.extents
                own = (x, y, x + w, y + h)
            # a window, a popup menu and a menu's items are drawn on their own: no container cuts them
            up = None if n is None or n.window == key or n.role_name in MENU_ROLES else parent.get(key)
            if up is not None and up in by_key and by_key[up].role_name in MENU_ROLES:
                up = None
            outer = None if up is None else visible(up)
            if own is None or outer is None:
                shown[key] = own or outer
            else:
                shown[key] = (
                    max(own[0], outer[0]),
                    max(own[1], outer[1]),
                    min(own[2], outer[2]),
                    min(own[3], outer[3]),
                )
        return shown[key]

    for n in nodes:
        visible((n.bus, n.path))
    return shown


def ui_nodes(
    nodes: list[AtspiNode],
    monitor: dict[str, int],
    scale: float,
    *,
    beyond: bool = False,
    keys: dict[str, tuple[str, str]] | None = None,
) -> list[UINode]:
    """The showing objects as UI-tree nodes on a screenshot of ``monitor`` (a region of the screen) at
    ``scale``: ARIA-like roles, a field named by its label and valued by its text, unnamed containers left
    out. A widget is cut to the part its containers show (a scrolled panel shows part of what it holds);
    one they hide entirely is left out, unless ``beyond`` (then with its whole box: it can be scrolled
    into view). ``keys`` receives each node's object on the bus, by ref."""
    names = {(n.bus, n.path): n.name for n in nodes}
    by_key = {(n.bus, n.path): n for n in nodes}
    parent = {child: (n.bus, n.path) for n in nodes for child in n.children}
    menus: dict[tuple[str, str], bool] = {}
    shown = shown_parts(nodes)

    def in_menu(key: tuple[str, str]) -> bool:
        """Whether an ancestor is a (popup) menu: the object is an item of an open menu."""
        if key not in menus:
            up = parent.get(key)
            menus[key] = up in by_key and (by_key[up].role_name in MENU_ROLES or in_menu(up))
        return menus[key]

    # a modal dialog on the screen takes the input: the windows behind it are not what a step acts on
    tops = [n for n in nodes if n.window == (n.bus, n.path) and n.has(ST_SHOWING)]
    modal = {n.window for n in tops if n.has(ST_MODAL)}
    if modal:
        nodes = [n for n in nodes if n.window in modal]
    # the active dialog is drawn over its window: its elements win a name both have (Qt's bridge
    # reports a file dialog opened with exec() without its modal state now and then)
    front = {n.window for n in tops if n.has(ST_ACTIVE) and n.role_name in DIALOG_ROLES}
    left, top = monitor["left"], monitor["top"]
    width, height = monitor["width"], monitor["height"]
    out: list[UINode] = []
    for n in nodes:
        if not n.has(ST_SHOWING) or n.extents is None:
            continue
        x, y, w, h = n.extents
        cut = shown[(n.bus, n.path)]
        if not beyond and cut is not None:
            if cut[2] - cut[0] < 1 or cut[3] - cut[1] < 1:
                continue  # its containers hide it (scrolled away)
            x, y, w, h = cut[0], cut[1], cut[2] - cut[0], cut[3] - cut[1]
        x, y = x - left, y - top
        if w < 1 or h < 1 or x + w <= 0 or y + h <= 0 or x >= width or y >= height:
            continue
        role = ROLES.get(n.role_name, "text")
        if n.role_name == "text":
            role = "textbox" if n.has(ST_EDITABLE) else "text"
        elif n.role_name == "label":
            role = "label" if n.label_for else "text"
        name = n.name or " ".join(names.get(t, "") for t in n.labelled_by).strip()
        value = n.text if role in ("textbox", "spinbutton") else None
        if not name and role == "text" and n.text:
            name = n.text
        if not name and role not in ("textbox", "spinbutton") and not n.text and role not in SCOPES:
            continue  # an unnamed container (a panel, a filler)
        s = scale
        out.append(
            UINode(
                ref=str(len(out)),
                role=role,
                name=name[:200],
                text=name[:200] if role in ("text", "label") else "",
                tag=n.role_name,
                value=value,
                checked=n.has(ST_CHECKED) if role in ("checkbox", "radio", "menuitemcheckbox") else None,
                interactive=role in INTERACTIVE,
                focused=n.has(ST_FOCUSED),
                enabled=n.has(ST_SENSITIVE) or not n.has(ST_FOCUSABLE),
                box=Box(x * s, y * s, w * s, h * s),
                layer=2 if in_menu((n.bus, n.path)) else int(n.window in front),
            )
        )
        if keys is not None:
            keys[out[-1].ref] = (n.bus, n.path)
    return out
