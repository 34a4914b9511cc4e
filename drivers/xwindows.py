"""What a private X display lacks and the desktop driver supplies: a window manager's part in focus (a
new window takes the keyboard, a click focuses its window, windows stay on the screen) and a keymap that
can type any character. :class:`XWindows` is that part of :class:`~pixelpilot.drivers.desktop.DesktopDriver`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

__all__ = ["XWindows"]


class XWindows:
    """Mixed into :class:`~pixelpilot.drivers.desktop.DesktopDriver` (which opens ``_x``)."""

    _x: Any
    _windows: set[int]

    if TYPE_CHECKING:

        def _fake(self, kind: int, detail: int = 0, xy: tuple[int, int] | None = None) -> None: ...

        def _xdotool(self, *args: str) -> None: ...

    def _top_levels(self) -> list[Any]:
        """The screen's mapped top-level windows that take focus, bottom to top (stacking order)."""
        from Xlib import X

        out = []
        for w in self._x.screen().root.query_tree().children:
            try:
                attrs = w.get_attributes()
                if attrs.map_state != X.IsViewable or attrs.override_redirect:
                    continue
                geo = w.get_geometry()
            except Exception:  # noqa: BLE001 - a window that went away meanwhile
                continue
            if geo.width > 1 and geo.height > 1:
                out.append(w)
        return out

    def _focus(self, window: Any) -> None:
        from Xlib import X

        window.configure(stack_mode=X.Above)
        window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self._x.sync()

    def _focus_new(self) -> None:
        """A top-level window that appeared since the last look (an application's window, a dialog) gets
        the keyboard focus, as a window manager gives it; the newest on top wins."""
        windows = self._top_levels()
        new = [w for w in windows if w.id not in self._windows]
        self._windows = {w.id for w in windows}
        for w in new:
            self._fit(w)
        if new:
            self._focus(new[-1])

    def _fit(self, window: Any) -> None:
        """Keep a new window on the screen, as a window manager constrains it (a GTK file chooser asks for
        more height than a small screen has, and centred on its parent, it starts above the top edge)."""
        root = self._x.screen().root
        geo = window.get_geometry()
        pos = window.translate_coords(root, 0, 0)
        x, y, w, h = -pos.x, -pos.y, geo.width, geo.height
        sw, sh = self._x.screen().width_in_pixels, self._x.screen().height_in_pixels
        nw, nh = min(w, sw), min(h, sh)
        nx, ny = min(max(x, 0), sw - nw), min(max(y, 0), sh - nh)
        if (nx, ny, nw, nh) != (x, y, w, h):
            window.configure(x=nx, y=ny, width=nw, height=nh)
            self._x.sync()

    def _focus_at(self, xy: tuple[int, int]) -> None:
        """A click gives the keyboard focus to the top-level window under it (click to focus)."""
        focus = self._x.get_input_focus().focus
        for w in reversed(self._top_levels()):
            geo = w.get_geometry()
            pos = w.translate_coords(self._x.screen().root, 0, 0)
            x0, y0 = -pos.x, -pos.y
            if x0 <= xy[0] < x0 + geo.width and y0 <= xy[1] < y0 + geo.height:
                if getattr(focus, "id", None) != w.id:
                    self._focus(w)
                return

    def _type_unicode(self, text: str) -> None:
        """Characters outside the keymap: each is bound to a spare keycode for both shift levels, then
        pressed through XTEST (xdotool binds one level only, and toolkits disagree on what a lone letter
        keysym means: GTK applies X's rule and types "Å" as "å", Qt the other way round)."""
        from Xlib import X

        spare = self._spare_keycode()
        if spare is None:  # a keymap with no free keycode: xdotool's own way
            self._xdotool("type", "--delay", "50", "--", text)
            return
        try:
            for ch in text:
                sym = ord(ch) if ord(ch) < 0x100 else 0x1000000 + ord(ch)
                self._x.change_keyboard_mapping(spare, [(sym, sym)])
                self._x.sync()
                time.sleep(0.03)  # let the application read the new mapping before the key comes
                self._fake(X.KeyPress, spare)
                self._fake(X.KeyRelease, spare)
                time.sleep(0.02)
        finally:
            self._x.change_keyboard_mapping(spare, [(0, 0)])
            self._x.sync()

    def _spare_keycode(self) -> int | None:
        """A keycode the keymap leaves unbound (the highest one)."""
        first = self._x.display.info.min_keycode
        count = self._x.display.info.max_keycode - first + 1
        for i, syms in reversed(list(enumerate(self._x.get_keyboard_mapping(first, count)))):
            if not any(syms):
                return first + i
        return None
