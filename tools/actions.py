"""Actions: what a script or the model asks a driver to do.

One pydantic union, discriminated by ``action``. Every point is in *screenshot pixels* of the frame
the action was decided on; drivers divide by ``Screen.scale`` to get their own input units.
Both Qwen3-VL action spaces (``computer_use`` and ``mobile_use``) map onto this union in
:mod:`tools.spaces`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

__all__ = [
    "Action",
    "Answer",
    "Click",
    "DoubleClick",
    "Drag",
    "Key",
    "LongPress",
    "MiddleClick",
    "MouseMove",
    "OpenApp",
    "Point",
    "RightClick",
    "Scroll",
    "Swipe",
    "SystemButton",
    "Terminate",
    "TripleClick",
    "Type",
    "Wait",
    "parse_action",
]

Point = tuple[int, int]
"""(x, y) in screenshot pixels."""


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def point(self) -> Point | None:
        """The point this action acts on, if any (used for markers and verification)."""
        return getattr(self, "at", None)


class _PointAction(_Base):
    at: Point

    @field_validator("at")
    @classmethod
    def _non_negative(cls, v: Point) -> Point:
        if v[0] < 0 or v[1] < 0:
            raise ValueError(f"point {v} is off-screen (negative)")
        return v


class Click(_PointAction):
    action: Literal["click"] = "click"


class DoubleClick(_PointAction):
    action: Literal["double_click"] = "double_click"


class TripleClick(_PointAction):
    action: Literal["triple_click"] = "triple_click"


class RightClick(_PointAction):
    action: Literal["right_click"] = "right_click"


class MiddleClick(_PointAction):
    action: Literal["middle_click"] = "middle_click"


class MouseMove(_PointAction):
    action: Literal["mouse_move"] = "mouse_move"


class Drag(_Base):
    """Press at ``start`` (or where the pointer is, when ``None``), move to ``end``, release."""

    action: Literal["drag"] = "drag"
    start: Point | None = None
    end: Point

    @property
    def point(self) -> Point | None:
        return self.end


class Type(_Base):
    """Type text with the keyboard into whatever has focus."""

    action: Literal["type"] = "type"
    text: str


class Key(_Base):
    """Press keys together: ``["ctrl", "a"]``; names are normalised by the driver."""

    action: Literal["key"] = "key"
    keys: list[str] = Field(min_length=1)


class Scroll(_Base):
    """Scroll by ``dx``/``dy`` pixels; positive ``dy`` moves the content down the page (like a wheel)."""

    action: Literal["scroll"] = "scroll"
    at: Point | None = None
    dx: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    dy: int = Field(default=0, ge=-1_000_000, le=1_000_000)


class Swipe(_Base):
    action: Literal["swipe"] = "swipe"
    start: Point
    end: Point
    duration: float = Field(default=0.3, ge=0, description="seconds")

    @property
    def point(self) -> Point | None:
        return self.start


class LongPress(_PointAction):
    action: Literal["long_press"] = "long_press"
    duration: float = Field(default=1.0, ge=0, description="seconds")


class SystemButton(_Base):
    action: Literal["system_button"] = "system_button"
    button: Literal["Back", "Home", "Menu", "Enter"]


class OpenApp(_Base):
    action: Literal["open_app"] = "open_app"
    app: str = Field(min_length=1)


class Wait(_Base):
    action: Literal["wait"] = "wait"
    seconds: float = Field(default=1.0, ge=0, le=600)


class Answer(_Base):
    action: Literal["answer"] = "answer"
    text: str


class Terminate(_Base):
    action: Literal["terminate"] = "terminate"
    status: Literal["success", "failure"]


Action = Annotated[
    Click
    | DoubleClick
    | TripleClick
    | RightClick
    | MiddleClick
    | MouseMove
    | Drag
    | Type
    | Key
    | Scroll
    | Swipe
    | LongPress
    | SystemButton
    | OpenApp
    | Wait
    | Answer
    | Terminate,
    Field(discriminator="action"),
]

_ADAPTER: TypeAdapter[Action] = TypeAdapter(Action)


def parse_action(data: object) -> Action:
    """Validate a dict (or JSON string) into an :data:`Action`; raises ``pydantic.ValidationError``."""
    if isinstance(data, str | bytes):
        return _ADAPTER.validate_json(data)
    return _ADAPTER.validate_python(data)
