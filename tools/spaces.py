"""Action spaces: the Qwen3-VL tools ``computer_use`` (desktop, browser) and ``mobile_use`` (Android).

Each space knows its tool schema (package data, byte-exact as the model was trained on) and maps the
tool call's ``arguments`` to our :data:`tools.actions.Action` union and back. Coordinates given to
and returned by this module are already in screenshot pixels: the 0–1000 grid is converted in
``agent.qwen`` and nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from pixelpilot.tools import actions as A

__all__ = ["COMPUTER_USE", "MOBILE_USE", "ActionSpace", "get_space"]

SpaceName = Literal["computer_use", "mobile_use"]


@cache
def _schema_text(name: str) -> str:
    return resources.files("pixelpilot.tools").joinpath("schemas", f"{name}.json").read_text("utf-8").strip()


def _point(args: dict[str, Any], key: str = "coordinate") -> A.Point:
    value = args.get(key)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"`{key}` must be [x, y], got {value!r}")
    x, y = value
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y)):
        raise ValueError(f"`{key}` must hold two numbers, got {value!r}")
    return (round(x), round(y))


def _require(args: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in args:
        raise ValueError(f"action `{args.get('action')}` needs `{key}`")
    value = args[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"`{key}` has the wrong type: {_short(value)}")
    if isinstance(value, int | float) and not (math.isfinite(value) and abs(value) <= MAX_NUMBER):
        raise ValueError(f"`{key}` is out of range: {_short(value)}")
    return value


MAX_NUMBER = 1_000_000
"""No argument of a tool call is a number this large (scroll amounts, times, coordinates)."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"… ({len(text)} characters)"


@dataclass(frozen=True)
class ActionSpace:
    """One Qwen3-VL tool: its name, schema and the mapping of its actions."""

    name: SpaceName
    grid: int
    """The square resolution the tool description declares (1000 or 999)."""

    @property
    def actions(self) -> list[str]:
        return list(self.schema()["function"]["parameters"]["properties"]["action"]["enum"])

    def schema(self) -> dict[str, Any]:
        """The tool definition as sent to the model (``{"type": "function", "function": {...}}``)."""
        return json.loads(_schema_text(self.name))

    def schema_json(self) -> str:
        """The tool definition serialised exactly as the reference prompt shows it."""
        return _schema_text(self.name)

    def to_action(self, args: dict[str, Any], *, scroll_unit: int = 100) -> A.Action:
        """Map a tool call's ``arguments`` (coordinates in pixels) to an :data:`Action`.

        Raises ``ValueError`` with a short reason that can be shown to the model.
        """
        name = args.get("action")
        if name not in self.actions:
            raise ValueError(
                f"unknown action {name!r} for {self.name}; expected one of {', '.join(self.actions)}"
            )
        if self.name == "computer_use":
            return _computer(args, scroll_unit)
        return _mobile(args)

    def to_arguments(self, action: A.Action, *, scroll_unit: int = 100) -> dict[str, Any]:
        """The inverse of :meth:`to_action`, with coordinates in pixels."""
        table = _TO_COMPUTER if self.name == "computer_use" else _TO_MOBILE
        fn = table.get(action.action)
        if fn is None:
            raise ValueError(f"action {action.action!r} has no form in {self.name}")
        return fn(action, scroll_unit)


def _computer(args: dict[str, Any], unit: int) -> A.Action:
    name = args["action"]
    simple = {
        "left_click": A.Click,
        "right_click": A.RightClick,
        "middle_click": A.MiddleClick,
        "double_click": A.DoubleClick,
        "triple_click": A.TripleClick,
        "mouse_move": A.MouseMove,
    }
    if name in simple:
        return simple[name](at=_point(args))
    if name == "left_click_drag":
        return A.Drag(end=_point(args))
    if name == "key":
        keys = _require(args, "keys", list)
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"`keys` must be a non-empty list of key names, got {keys!r}")
        return A.Key(keys=keys)
    if name in ("type", "answer"):
        text = _require(args, "text", str)
        return A.Type(text=text) if name == "type" else A.Answer(text=text)
    if name in ("scroll", "hscroll"):
        amount = _require(args, "pixels", (int, float))
        at = _point(args) if "coordinate" in args else None
        if name == "scroll":  # positive = up, i.e. content moves down
            return A.Scroll(at=at, dy=-round(amount * unit))
        return A.Scroll(at=at, dx=round(amount * unit))
    if name == "wait":
        return A.Wait(seconds=float(args.get("time", 1.0)))
    if name == "terminate":
        return A.Terminate(status=_require(args, "status", str))
    raise ValueError(f"unhandled computer_use action {name!r}")  # pragma: no cover - enum checked above


def _mobile(args: dict[str, Any]) -> A.Action:
    name = args["action"]
    if name == "click":
        return A.Click(at=_point(args))
    if name == "long_press":
        return A.LongPress(at=_point(args), duration=float(args.get("time", 1.0)))
    if name == "swipe":
        return A.Swipe(start=_point(args), end=_point(args, "coordinate2"))
    if name == "type":
        return A.Type(text=_require(args, "text", str))
    if name == "answer":
        return A.Answer(text=_require(args, "text", str))
    if name == "system_button":
        return A.SystemButton(button=_require(args, "button", str))
    if name == "wait":
        return A.Wait(seconds=float(args.get("time", 1.0)))
    if name == "terminate":
        return A.Terminate(status=_require(args, "status", str))
    raise ValueError(f"unhandled mobile_use action {name!r}")  # pragma: no cover


def _xy(p: A.Point | None) -> list[int]:
    assert p is not None
    return [p[0], p[1]]


def _scroll_args(a: Any, unit: int) -> dict[str, Any]:
    out: dict[str, Any] = (
        {"action": "hscroll", "pixels": round(a.dx / unit)}
        if a.dx and not a.dy
        else {
            "action": "scroll",
            "pixels": -round(a.dy / unit),
        }
    )
    if a.at is not None:
        out["coordinate"] = _xy(a.at)
    return out


_TO_COMPUTER: dict[str, Any] = {
    "click": lambda a, u: {"action": "left_click", "coordinate": _xy(a.at)},
    "right_click": lambda a, u: {"action": "right_click", "coordinate": _xy(a.at)},
    "middle_click": lambda a, u: {"action": "middle_click", "coordinate": _xy(a.at)},
    "double_click": lambda a, u: {"action": "double_click", "coordinate": _xy(a.at)},
    "triple_click": lambda a, u: {"action": "triple_click", "coordinate": _xy(a.at)},
    "mouse_move": lambda a, u: {"action": "mouse_move", "coordinate": _xy(a.at)},
    "drag": lambda a, u: {"action": "left_click_drag", "coordinate": _xy(a.end)},
    "key": lambda a, u: {"action": "key", "keys": list(a.keys)},
    "type": lambda a, u: {"action": "type", "text": a.text},
    "scroll": _scroll_args,
    "wait": lambda a, u: {"action": "wait", "time": a.seconds},
    "answer": lambda a, u: {"action": "answer", "text": a.text},
    "terminate": lambda a, u: {"action": "terminate", "status": a.status},
}

_TO_MOBILE: dict[str, Any] = {
    "click": lambda a, u: {"action": "click", "coordinate": _xy(a.at)},
    "long_press": lambda a, u: {"action": "long_press", "coordinate": _xy(a.at), "time": a.duration},
    "swipe": lambda a, u: {"action": "swipe", "coordinate": _xy(a.start), "coordinate2": _xy(a.end)},
    "type": lambda a, u: {"action": "type", "text": a.text},
    "answer": lambda a, u: {"action": "answer", "text": a.text},
    "system_button": lambda a, u: {"action": "system_button", "button": a.button},
    "wait": lambda a, u: {"action": "wait", "time": a.seconds},
    "terminate": lambda a, u: {"action": "terminate", "status": a.status},
}

COMPUTER_USE = ActionSpace("computer_use", grid=1000)
MOBILE_USE = ActionSpace("mobile_use", grid=999)


def get_space(name: str) -> ActionSpace:
    """Look a space up by its tool name."""
    spaces = {"computer_use": COMPUTER_USE, "mobile_use": MOBILE_USE}
    try:
        return spaces[name]
    except KeyError:
        raise ValueError(f"unknown action space {name!r}; expected computer_use or mobile_use") from None
