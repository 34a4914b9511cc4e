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


_PYAUTOGUI_KEYS = {
    "cmd": "command",
    "meta": "win",
    "super": "win",
    "esc": "escape",
    "del": "delete",
    "page_up": "pageup",
    "page_down": "pagedown",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "control": "ctrl",
    "option": "alt",
}


def pyautogui_keys(keys: Sequence[str]) -> list[str]:
    """Key names as pyautogui's ``hotkey`` takes them."""
    return [_PYAUTOGUI_KEYS.get(k.lower(), k.lower()) for k in keys]
