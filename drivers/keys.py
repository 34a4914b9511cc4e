"""Key names: one vocabulary (``ctrl``, ``enter``, ``pagedown`` ...) mapped to each backend's."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["parse_combo", "playwright_combo"]

_PLAYWRIGHT = {
    "ctrl": "Control",
    "control": "Control",
    "alt": "Alt",
    "option": "Alt",
    "shift": "Shift",
    "cmd": "Meta",
    "command": "Meta",
    "meta": "Meta",
    "super": "Meta",
    "win": "Meta",
    "enter": "Enter",
    "return": "Enter",
    "esc": "Escape",
    "escape": "Escape",
    "tab": "Tab",
    "backspace": "Backspace",
    "delete": "Delete",
    "del": "Delete",
    "space": "Space",
    "insert": "Insert",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "arrowup": "ArrowUp",
    "arrowdown": "ArrowDown",
    "arrowleft": "ArrowLeft",
    "arrowright": "ArrowRight",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "page_up": "PageUp",
    "page_down": "PageDown",
    "home": "Home",
    "end": "End",
    "capslock": "CapsLock",
}


def parse_combo(text: str) -> list[str]:
    """``"ctrl+shift+t"`` → ``["ctrl", "shift", "t"]`` (a lone ``+`` stays a key)."""
    text = text.strip()
    if text == "+":
        return ["+"]
    parts = [p.strip() for p in text.split("+")]
    if any(not p for p in parts):
        raise ValueError(f"bad key combination {text!r}: use names joined by '+', e.g. ctrl+a")
    return parts


def _one(key: str) -> str:
    low = key.lower()
    if low in _PLAYWRIGHT:
        return _PLAYWRIGHT[low]
    if len(low) in (2, 3) and low[0] == "f" and low[1:].isdigit():
        return low.upper()
    return key


def playwright_combo(keys: Sequence[str]) -> str:
    """Our key names → Playwright's ``"Control+Shift+T"`` form."""
    return "+".join(_one(k) for k in keys)
