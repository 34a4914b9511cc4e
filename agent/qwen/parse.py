"""Reading Qwen3-VL replies: tolerant of form, strict about content.

Form: ``<tool_call>`` blocks with or without newlines, an unterminated block, code fences, text or
``Thought:``/``Action:`` lines around the call, several calls (the first is used), ``<think>`` reasoning
(kept, never parsed as the call). Content: the function must be the space's tool, the arguments must
validate against the action schema and coordinates must lie on the grid — anything else is a
:class:`~agent.errors.ModelOutputError` carrying the raw reply.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from pydantic import ValidationError

from pixelpilot.agent.errors import ModelOutputError
from pixelpilot.agent.qwen.grid import OffScreen, grid_to_pixels
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.tools.actions import Action
from pixelpilot.tools.spaces import ActionSpace

__all__ = [
    "GroundingItem",
    "ParsedReply",
    "ToolCall",
    "parse_check",
    "parse_grounding",
    "parse_reply",
    "reply_to_action",
]

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.DOTALL)
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ToolCall:
    name: str | None
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ParsedReply:
    raw: str
    call: ToolCall | None
    calls: int
    thought: str | None = None
    action_text: str | None = None
    """The ``Action:`` line: a short narration of the step, used as history."""
    thinking: str | None = None
    text: str = ""
    """The reply without reasoning and tool calls (what an ``answer`` or ``ask`` returns)."""


def _split_thinking(text: str) -> tuple[str | None, str]:
    parts = _THINK.findall(text)
    if parts:
        return "\n".join(p.strip() for p in parts), _THINK.sub("", text)
    if "</think>" in text:  # Thinking templates open <think> in the prompt: the reply starts inside it
        head, _, tail = text.partition("</think>")
        return head.replace("<think>", "").strip(), tail
    return None, text


MAX_REPLY_CHARS = 32_000
"""Replies are read up to here: a tool call is ~100 characters, a reasoning block a few thousand;
past this the rest is ignored (and the log says the reply was cut)."""
MAX_OBJECTS = 32
"""At most this many JSON objects are looked at in one reply."""


def _loads(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError (a 5000-digit number, 50k nested brackets)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _objects(text: str) -> list[Any]:
    """Every JSON value that starts at a '{' in ``text`` and parses (trailing garbage tolerated)."""
    out: list[Any] = []
    i = text.find("{")
    tries = 0
    while i != -1 and len(out) < MAX_OBJECTS and tries < 4 * MAX_OBJECTS:
        tries += 1
        try:
            obj, end = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):  # not JSON, a number past Python's digit limit, too deep
            i = text.find("{", i + 1)
            continue
        out.append(obj)
        i = text.find("{", end)
    return out


def _as_call(obj: Any, *, inside_block: bool) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if "name" in obj and "arguments" in obj:
        args = obj["arguments"]
        if isinstance(args, str):
            try:
                args = _loads(args)
            except ValueError:
                return ToolCall(obj["name"] if isinstance(obj["name"], str) else None, {"__unparsed__": args})
        if isinstance(args, dict):
            return ToolCall(obj["name"] if isinstance(obj["name"], str) else None, args)
        return ToolCall(obj["name"] if isinstance(obj["name"], str) else None, {"__unparsed__": args})
    if inside_block and "action" in obj:  # a bare arguments object inside <tool_call>
        return ToolCall(None, obj)
    return None


def _line(text: str, label: str) -> str | None:
    m = re.search(rf"^\s*{label}\s*:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    if not m:
        return None
    return m.group(1).strip().strip('"').strip()


def parse_reply(raw: str) -> ParsedReply:
    """Find the tool call(s) and the narration in a reply. Never raises."""
    thinking, body = _split_thinking(raw[:MAX_REPLY_CHARS])
    calls: list[ToolCall] = []
    blocks = _CALL.findall(body)
    for block in blocks:
        inner = _FENCE.sub(lambda m: m.group(1), block)
        for obj in _objects(inner)[:1]:
            call = _as_call(obj, inside_block=True)
            if call is not None:
                calls.append(call)
    if not calls:
        for fenced in _FENCE.findall(body):
            calls += [c for c in (_as_call(o, inside_block=False) for o in _objects(fenced)) if c is not None]
    if not calls:
        calls = [c for c in (_as_call(o, inside_block=False) for o in _objects(body)) if c is not None]
    text = _CALL.sub("", body).strip()
    return ParsedReply(
        raw=raw,
        call=calls[0] if calls else None,
        calls=len(calls),
        thought=_line(text, "Thought"),
        action_text=_line(text, "Action"),
        thinking=thinking,
        text=text,
    )


def _short(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p)[:1].isupper())
    return f"{where}: {first['msg']}" if where else first["msg"]


def reply_to_action(
    parsed: ParsedReply,
    space: ActionSpace,
    size: tuple[int, int],
    *,
    divisor: int,
    scroll_unit: int = 100,
    profile: QwenProfile | None = None,
) -> tuple[Action, dict[str, Any]]:
    """Validate the call and convert it to an Action in pixels of a ``size`` screenshot.

    Returns the action and a dict of facts for the log (grid and pixel points).
    """
    call = parsed.call
    if call is None:
        raise ModelOutputError("the reply has no tool call", raw=parsed.raw)
    if call.name is not None and call.name != space.name:
        raise ModelOutputError(
            f"the reply calls {call.name!r}, but the only tool is {space.name!r}", raw=parsed.raw
        )
    if "__unparsed__" in call.arguments:
        raise ModelOutputError("the tool call's arguments are not a JSON object", raw=parsed.raw)
    facts: dict[str, Any] = {"arguments": call.arguments}
    args = dict(call.arguments)
    if profile is not None:
        try:
            adapted = profile.adapt(args, size)
        except OffScreen as exc:
            raise ModelOutputError(str(exc), raw=parsed.raw) from None
        except (ValueError, ValidationError) as exc:
            reason = _short(exc) if isinstance(exc, ValidationError) else str(exc)
            raise ModelOutputError(reason, raw=parsed.raw) from None
        if not isinstance(adapted, dict):  # a derivative's own action, read whole
            if adapted.point is not None:
                facts["pixel_point"] = list(adapted.point)
            return adapted, facts
        args = adapted
    for key in ("coordinate", "coordinate2"):
        if key not in args:
            continue
        value = args[key]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
            )
        ):
            raise ModelOutputError(f"`{key}` must be [x, y] with two numbers, got {value!r}", raw=parsed.raw)
        try:
            px = grid_to_pixels((float(value[0]), float(value[1])), size, divisor)
        except OffScreen as exc:
            raise ModelOutputError(str(exc), raw=parsed.raw) from None
        args[key] = list(px)
        facts["grid_point" if key == "coordinate" else "grid_point2"] = [value[0], value[1]]
        facts["pixel_point" if key == "coordinate" else "pixel_point2"] = list(px)
    try:
        action = space.to_action(args, scroll_unit=scroll_unit)
    except ValidationError as exc:
        raise ModelOutputError(f"invalid arguments: {_short(exc)}", raw=parsed.raw) from None
    except ValueError as exc:
        raise ModelOutputError(str(exc), raw=parsed.raw) from None
    return action, facts


@dataclass(frozen=True)
class GroundingItem:
    label: str | None
    point: tuple[float, float] | None = None
    bbox: tuple[float, float, float, float] | None = None


def parse_grounding(raw: str) -> list[GroundingItem]:
    """``point_2d`` / ``bbox_2d`` answers (a fenced JSON list, or objects in text). Raises ModelOutputError."""
    _, body = _split_thinking(raw[:MAX_REPLY_CHARS])
    fenced = _FENCE.findall(body)
    text = fenced[0] if fenced else body
    items: list[Any] = []
    try:
        data = _loads(text)
        items = data[:MAX_OBJECTS] if isinstance(data, list) else [data]
    except ValueError:
        items = _objects(text)
    out: list[GroundingItem] = []
    for it in items:
        if not isinstance(it, dict):
            continue
        label = it.get("label") if isinstance(it.get("label"), str) else None
        p, b = it.get("point_2d"), it.get("bbox_2d")
        if _numbers(p, 2):
            out.append(GroundingItem(label, point=(float(p[0]), float(p[1]))))
        elif _numbers(b, 4):
            out.append(GroundingItem(label, bbox=(float(b[0]), float(b[1]), float(b[2]), float(b[3]))))
    if not out:
        raise ModelOutputError("the reply has no point_2d or bbox_2d", raw=raw)
    return out


def _numbers(v: Any, n: int) -> TypeGuard[Sequence[float]]:
    return (
        isinstance(v, list | tuple)
        and len(v) == n
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
    )


def parse_check(raw: str) -> tuple[bool, str]:
    """``{"result": bool, "reason": str}``, or a plain yes/no/true/false. Raises ModelOutputError."""
    _, body = _split_thinking(raw[:MAX_REPLY_CHARS])
    for obj in _objects(body):
        if isinstance(obj, dict) and isinstance(obj.get("result"), bool):
            return obj["result"], str(obj.get("reason", "")).strip()
    m = re.match(r"\s*(true|false|yes|no)\b[\s.,:;-]*(.*)", body.strip(), re.IGNORECASE | re.DOTALL)
    if m:
        return m.group(1).lower() in ("true", "yes"), m.group(2).strip()
    raise ModelOutputError('expected {"result": true|false, "reason": "..."}', raw=raw)
