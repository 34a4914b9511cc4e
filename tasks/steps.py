"""The steps of a task file: one pydantic model per verb, each with its arguments (``extra="forbid"``),
and the discriminated union :data:`Step` that :class:`pixelpilot.tasks.spec.TaskFile` holds."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.query import Query

__all__ = ["STEP_VERBS", "Step"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _target(v: Any) -> Any:
    try:
        Query.of(v)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return v


TargetValue = Annotated[str | dict[str, Any], AfterValidator(_target)]
"""A target: the short form (``Save``, ``role=button[name="Save"]``) or a locator mapping
(``{role: button, name: Save, inside: {role: dialog}}``; see :mod:`pixelpilot.agent.query`)."""
_NOT_QUERY = {"url", "response", "download", "timeout", "state", "target", "save_as", "what"}
_EXPECTS = {"to_have_text", "to_have_value", "to_have_count", "to_be"}


def _gather_target(data: Any) -> Any:
    """``{role: dialog, state: hidden}`` is ``{target: {role: dialog}, state: hidden}``: a step's own
    keys stay, the locator's go into ``target``."""
    if not isinstance(data, dict) or "target" in data:
        return data
    own = {k: v for k, v in data.items() if k in _NOT_QUERY or k in _EXPECTS}
    query = {k: v for k, v in data.items() if k not in own}
    if not query:
        return data
    return {**own, "target": query}


# -- steps ----------------------------------------------------------------------------------------
class ClickArgs(_Strict):
    image: str = Field(
        min_length=1, description="a picture to find on screen (path relative to the task file)"
    )
    nth: int | None = Field(
        default=None, ge=1, description="which match, in reading order, when several match"
    )


class TypeArgs(_Strict):
    text: str | None = Field(default=None, description="what to type")
    secret: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="type this secret (from the environment or --secrets): its value is written nowhere",
    )
    into: TargetValue | None = Field(
        default=None, description="label, accessible name or placeholder of the field, or a locator"
    )
    nth: int | None = Field(default=None, ge=1)
    clear: bool = Field(default=True, description="replace what the field holds")

    @model_validator(mode="after")
    def _text_or_secret(self) -> TypeArgs:
        if (self.text is None) == (self.secret is None):
            raise ValueError("give either text: or secret:")
        return self


class ScrollArgs(_Strict):
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int | None = Field(default=None, gt=0, description="pixels; default most of a screen")
    target: TargetValue | None = Field(default=None, description="scroll over this element")


class WaitArgs(_Strict):
    text: str | None = Field(default=None, min_length=1, description="text to appear")
    target: TargetValue | None = Field(default=None, description="a locator to reach the state")
    state: Literal["visible", "hidden", "gone", "enabled", "disabled", "checked", "unchecked"] | None = None
    url: str | None = Field(default=None, min_length=1, description="browser: a part of the URL to reach")
    response: str | None = Field(
        default=None, min_length=1, description="browser: a part of a response's URL"
    )
    download: str | None = Field(
        default=None, min_length=1, description="browser: a part of a download's name"
    )
    timeout: float | None = Field(default=None, gt=0, description="seconds")

    @model_validator(mode="before")
    @classmethod
    def _locator(cls, data: Any) -> Any:
        """``{role: dialog, state: hidden}``: the locator's keys go into ``target``."""
        if not isinstance(data, dict) or "target" in data:
            return data
        own = {"url", "response", "download", "timeout", "state"}
        query = {k: v for k, v in data.items() if k not in own}
        if set(query) - {"text"}:
            return {**{k: v for k, v in data.items() if k in own}, "target": query}
        return data

    @model_validator(mode="after")
    def _one(self) -> WaitArgs:
        if sum(v is not None for v in (self.text, self.target, self.url, self.response, self.download)) != 1:
            raise ValueError("give one of text:, a locator, url:, response: or download:")
        if self.state is not None and self.text is None and self.target is None:
            raise ValueError("state: goes with a text or a locator")
        return self


class SelectArgs(_Strict):
    option: str = Field(min_length=1)
    field: TargetValue | None = Field(default=None, description="label of the dropdown, or a locator")


class OpenStep(_Strict):
    open: str = Field(min_length=1, description="URL, or a file path relative to the task file")


def _click_kind(v: Any) -> str:
    return "Picture" if isinstance(v, ClickArgs) or (isinstance(v, dict) and "image" in v) else "Locator"


class ClickStep(_Strict):
    click: Annotated[
        Annotated[ClickArgs, Tag("Picture")] | Annotated[TargetValue, Tag("Locator")],
        Discriminator(_click_kind),
    ] = Field(description="a text, a locator mapping, or {image: picture.png} (with nth:)")

    @property
    def image(self) -> ClickArgs | None:
        return self.click if isinstance(self.click, ClickArgs) else None

    @property
    def target(self) -> str | dict[str, Any]:
        assert not isinstance(self.click, ClickArgs)
        return self.click


class TypeStep(_Strict):
    type: str | TypeArgs

    @property
    def args(self) -> TypeArgs:
        return self.type if isinstance(self.type, TypeArgs) else TypeArgs(text=self.type)


class KeyStep(_Strict):
    key: str = Field(min_length=1, description="a key or combination: Enter, ctrl+a, ctrl+shift+t")

    @field_validator("key")
    @classmethod
    def _combo(cls, v: str) -> str:
        from pixelpilot.drivers.keys import parse_combo

        parse_combo(v)
        return v


class ScrollStep(_Strict):
    scroll: Literal["up", "down", "left", "right"] | ScrollArgs

    @property
    def args(self) -> ScrollArgs:
        return self.scroll if isinstance(self.scroll, ScrollArgs) else ScrollArgs(direction=self.scroll)


class WaitForStep(_Strict):
    wait_for: str | WaitArgs

    @property
    def args(self) -> WaitArgs:
        return self.wait_for if isinstance(self.wait_for, WaitArgs) else WaitArgs(text=self.wait_for)


class SeeStep(_Strict):
    see: TargetValue = Field(description="a text (or a locator) that must be visible")


class SelectStep(_Strict):
    select: str | SelectArgs

    @property
    def args(self) -> SelectArgs:
        return self.select if isinstance(self.select, SelectArgs) else SelectArgs(option=self.select)


class GoalArgs(_Strict):
    goal: str = Field(min_length=1, description="what the model should achieve")
    max_steps: int = Field(default=15, ge=1, le=500)
    max_seconds: float | None = Field(default=None, gt=0)
    max_model_calls: int | None = Field(default=None, ge=1)


class GoalStep(_Strict):
    goal: str | GoalArgs

    @property
    def args(self) -> GoalArgs:
        return self.goal if isinstance(self.goal, GoalArgs) else GoalArgs(goal=self.goal)


class AskArgs(_Strict):
    question: str = Field(min_length=1)
    save_as: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name to keep the answer under"
    )


class AskStep(_Strict):
    ask: str | AskArgs

    @property
    def args(self) -> AskArgs:
        return self.ask if isinstance(self.ask, AskArgs) else AskArgs(question=self.ask)


class CheckStep(_Strict):
    check: str = Field(min_length=1, description="a statement the model must find true on screen")


class HoverStep(_Strict):
    hover: TargetValue


class DoubleClickStep(_Strict):
    double_click: TargetValue


class RightClickStep(_Strict):
    right_click: TargetValue


class DragArgs(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: TargetValue = Field(alias="from", description="where to press")
    to: TargetValue = Field(description="where to release")
    nth: int | None = Field(default=None, ge=1, description="which match of from:")


class DragStep(_Strict):
    drag: DragArgs


class UploadArgs(_Strict):
    file: str = Field(min_length=1, description="the file to choose (relative to the task file)")
    into: TargetValue = Field(description="the file input's label, or the button that opens the chooser")


class UploadStep(_Strict):
    upload: UploadArgs


class SwitchTabStep(_Strict):
    switch_tab: int | str = Field(
        description="a tab's index (0 the first, -1 the last), or part of its title or URL"
    )


class CloseTabStep(_Strict):
    close_tab: Literal[True] = Field(description="close the current tab (true)")


class DialogText(_Strict):
    accept: str = Field(description="accept a prompt() with this text")


DialogChoice = Literal["accept", "dismiss"] | DialogText


def dialog_policy(choice: DialogChoice) -> str | tuple[str, str | None]:
    """A task file's dialog choice as the driver's policy."""
    return ("accept", choice.accept) if isinstance(choice, DialogText) else choice


class DialogStep(_Strict):
    dialog: DialogChoice = Field(
        description="how to answer the next alert/confirm/prompt: accept, dismiss, {accept: text}"
    )


class ReadArgs(_Strict):
    target: TargetValue
    save_as: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="name to keep it under: ${name}")
    what: Literal["text", "value", "count"] = Field(
        default="text", description="an element's text, a field's value, how many match"
    )

    @model_validator(mode="before")
    @classmethod
    def _locator(cls, data: Any) -> Any:
        return _gather_target(data)


class ReadStep(_Strict):
    read: ReadArgs


class ExpectArgs(_Strict):
    target: TargetValue
    to_have_text: str | None = None
    to_have_value: str | None = None
    to_have_count: int | None = Field(default=None, ge=0)
    to_be: Literal["visible", "hidden", "gone", "enabled", "disabled", "checked", "unchecked"] | None = None
    timeout: float | None = Field(default=None, ge=0, description="seconds (the wait timeout by default)")

    @model_validator(mode="before")
    @classmethod
    def _locator(cls, data: Any) -> Any:
        return _gather_target(data)

    @model_validator(mode="after")
    def _one(self) -> ExpectArgs:
        given = [
            v
            for v in (self.to_have_text, self.to_have_value, self.to_have_count, self.to_be)
            if v is not None
        ]
        if len(given) > 1:
            raise ValueError("one of to_have_text, to_have_value, to_have_count or to_be per expect")
        return self


class ExpectStep(_Strict):
    expect: ExpectArgs


class CheckBoxStep(_Strict):
    check_box: TargetValue = Field(description="check this checkbox, radio button or switch (if it is not)")


class UncheckBoxStep(_Strict):
    uncheck_box: TargetValue = Field(description="uncheck it (if it is checked)")


class ScrollIntoViewStep(_Strict):
    scroll_into_view: TargetValue


class ActStep(_Strict):
    act: str = Field(min_length=1, description="one step the model decides")


_STEP_MODELS: dict[str, type[_Strict]] = {
    "open": OpenStep,
    "click": ClickStep,
    "type": TypeStep,
    "key": KeyStep,
    "scroll": ScrollStep,
    "wait_for": WaitForStep,
    "see": SeeStep,
    "select": SelectStep,
    "goal": GoalStep,
    "act": ActStep,
    "ask": AskStep,
    "check": CheckStep,
    "dialog": DialogStep,
    "hover": HoverStep,
    "double_click": DoubleClickStep,
    "right_click": RightClickStep,
    "drag": DragStep,
    "switch_tab": SwitchTabStep,
    "close_tab": CloseTabStep,
    "upload": UploadStep,
    "read": ReadStep,
    "expect": ExpectStep,
    "check_box": CheckBoxStep,
    "uncheck_box": UncheckBoxStep,
    "scroll_into_view": ScrollIntoViewStep,
}
STEP_VERBS = tuple(_STEP_MODELS)


def _verb(v: Any) -> str | None:
    if isinstance(v, dict):
        keys = [k for k in v if k in _STEP_MODELS]
        return keys[0] if len(keys) == 1 else None
    if isinstance(v, BaseModel):
        return next((k for k, m in _STEP_MODELS.items() if isinstance(v, m)), None)
    return None


Step = Annotated[
    Annotated[OpenStep, Tag("open")]
    | Annotated[ClickStep, Tag("click")]
    | Annotated[TypeStep, Tag("type")]
    | Annotated[KeyStep, Tag("key")]
    | Annotated[ScrollStep, Tag("scroll")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[SeeStep, Tag("see")]
    | Annotated[SelectStep, Tag("select")]
    | Annotated[GoalStep, Tag("goal")]
    | Annotated[ActStep, Tag("act")]
    | Annotated[AskStep, Tag("ask")]
    | Annotated[CheckStep, Tag("check")]
    | Annotated[DialogStep, Tag("dialog")]
    | Annotated[HoverStep, Tag("hover")]
    | Annotated[DoubleClickStep, Tag("double_click")]
    | Annotated[RightClickStep, Tag("right_click")]
    | Annotated[DragStep, Tag("drag")]
    | Annotated[SwitchTabStep, Tag("switch_tab")]
    | Annotated[CloseTabStep, Tag("close_tab")]
    | Annotated[UploadStep, Tag("upload")]
    | Annotated[ReadStep, Tag("read")]
    | Annotated[ExpectStep, Tag("expect")]
    | Annotated[CheckBoxStep, Tag("check_box")]
    | Annotated[UncheckBoxStep, Tag("uncheck_box")]
    | Annotated[ScrollIntoViewStep, Tag("scroll_into_view")],
    Discriminator(
        _verb,
        custom_error_type="unknown_step",
        custom_error_message=f"a step is a mapping with exactly one of: {', '.join(STEP_VERBS)}",
    ),
]
