"""What GUI-tuned Qwen3-VL derivatives say, in pixelpilot's actions and prompts, as their published agents
read and write it (see :data:`pixelpilot.agent.qwen.profile.PROFILES`).

MAI-UI (Tongyi-MAI/MAI-UI, ``src/mai_naivigation_agent.py`` and ``src/prompt.py``; the executor in
``web_ui/agent_runner.py`` and ``web_ui/adb_utils.py``): its own ``mobile_use`` actions on a 0–999 grid —
``swipe`` by direction from a point (the screen's centre by default) over 500 pixels, the finger moving that
way; ``open``/``AWAKE`` an app by name; ``drag`` between two points; lower-case system buttons; ``wait`` of
2 s; ``terminate`` with ``fail``; ``INFO``/``ask_user`` (a question for the user: no one is there to
answer, so the run stops as failed) — and its history: earlier replies rewritten as
``<thinking>…</thinking>`` and a compact tool call with the point rounded through the 0–1 range.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pixelpilot.agent.qwen.grid import grid_to_pixels
from pixelpilot.tools import actions as A

__all__ = ["mai_ui_action", "mai_ui_history_reply"]

MAI_SCALE = 999
"""MAI-UI's grid (``SCALE_FACTOR``)."""
MAI_SWIPE_PX = 500
"""How far a swipe by direction moves (its executor's ``distance``, in screen pixels)."""
_TAGGED = re.compile(r"<thinking>(.*?)</thinking>.*?<tool_call>(.*?)</tool_call>", re.DOTALL)


def _xy(value: Any, size: tuple[int, int], what: str) -> tuple[int, int]:
    """A point on MAI-UI's grid (or a box's centre) in pixels of a ``size`` screenshot."""
    if not isinstance(value, list | tuple) or len(value) not in (2, 4):
        raise ValueError(f"`{what}` must be [x, y] (or a box [x1, y1, x2, y2]), got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f"`{what}` must hold numbers, got {value!r}")
    x, y = (value[0], value[1]) if len(value) == 2 else ((value[0] + value[2]) / 2, (value[1] + value[3]) / 2)
    return grid_to_pixels((float(x), float(y)), size, MAI_SCALE)


def mai_ui_action(args: dict[str, Any], size: tuple[int, int]) -> A.Action:
    """A MAI-UI tool call's ``arguments`` (points on its grid) as the action its executor performs."""
    name = args.get("action")
    text = args.get("text") if isinstance(args.get("text"), str) else args.get("value")
    if name == "click":
        return A.Click(at=_xy(args.get("coordinate"), size, "coordinate"))
    if name == "long_press":
        return A.LongPress(at=_xy(args.get("coordinate"), size, "coordinate"))
    if name == "type":
        return A.Type(text=str(args.get("text", "")))
    if name == "swipe":
        w, h = size
        x, y = _xy(args["coordinate"], size, "coordinate") if args.get("coordinate") else (w // 2, h // 2)
        dx, dy = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}.get(
            str(args.get("direction", "up")).lower(), (None, None)
        )
        if dx is None or dy is None:
            raise ValueError(f"swipe direction is up, down, left or right, not {args.get('direction')!r}")
        end = (min(max(x + dx * MAI_SWIPE_PX, 0), w - 1), min(max(y + dy * MAI_SWIPE_PX, 0), h - 1))
        return A.Swipe(start=(x, y), end=end)
    if name == "drag":
        start = _xy(args.get("start_coordinate"), size, "start_coordinate")
        return A.Swipe(start=start, end=_xy(args.get("end_coordinate"), size, "end_coordinate"), duration=1.0)
    if name in ("open", "AWAKE"):
        if not text:
            raise ValueError(f"{name} needs the app's name in `text`")
        return A.OpenApp(app=text)
    if name == "system_button":
        button = str(args.get("button", "")).lower()
        known = {"back": "Back", "home": "Home", "menu": "Menu", "enter": "Enter"}
        if button not in known:
            raise ValueError(f"system_button is back, home, menu or enter, not {args.get('button')!r}")
        return A.SystemButton(button=known[button])  # type: ignore[arg-type]
    if name == "wait":
        return A.Wait(seconds=2.0)
    if name == "terminate":
        return A.Terminate(status="success" if args.get("status", "success") == "success" else "failure")
    if name == "answer":
        return A.Answer(text=str(args.get("text", "")))
    if name in ("INFO", "ask_user"):  # a question for the user, and no one is there to answer it
        return A.Terminate(status="failure")
    raise ValueError(
        f"unknown action {name!r}; MAI-UI's are click, long_press, type, swipe, open, drag, system_button, "
        "wait, terminate, answer, AWAKE, INFO"
    )


def mai_ui_history_reply(raw: str) -> str | None:
    """An earlier reply as MAI-UI's agent puts it back into the history: ``<thinking>`` and a compact
    tool call, its point taken to 0–1 and back (None when the reply has no thinking and call)."""
    text = raw.strip()
    if "</think>" in text and "</thinking>" not in text:
        text = "<thinking>" + text.replace("</think>", "</thinking>")
    m = _TAGGED.search(text)
    if m is None:
        return None
    thinking = m.group(1).strip().strip('"')
    try:
        call = json.loads(m.group(2).strip().strip('"'))
        action = copy.deepcopy(call["arguments"])
    except (ValueError, KeyError, TypeError):
        return None
    if "coordinate" in action:
        c = action["coordinate"]
        if len(c) == 2:
            x, y = c
        elif len(c) == 4:
            x, y = (c[0] + c[2]) / 2, (c[1] + c[3]) / 2
        else:
            return None
        nx, ny = x / MAI_SCALE, y / MAI_SCALE  # as its parser keeps it, then as its history writes it
        action["coordinate"] = [int(nx * MAI_SCALE), int(ny * MAI_SCALE)]
    tool_call = json.dumps({"name": "mobile_use", "arguments": action}, separators=(",", ":"))
    return f"<thinking>\n{thinking}\n</thinking>\n<tool_call>\n{tool_call}\n</tool_call>"
