"""A scripted *oracle* model for tests: a fixed plan of tool calls whose points it finds the way a person
writing the test would — by locating the plan's targets on the live driver's screen (its UI tree) — and
writes in the cookbook's reply format on the 0–1000 grid. It stands in for the weights only: the
prompts, the parser, the grid conversion, the actions and the record are the real ones."""

from __future__ import annotations

import json
import re
from typing import Any

from pixelpilot.agent.locate import Locator
from pixelpilot.agent.models import ScriptedModel


def tool_call(arguments: dict[str, Any], said: str = "") -> str:
    call = json.dumps({"name": "computer_use", "arguments": arguments})
    return (f"Action: {said}\n" if said else "") + f"<tool_call>\n{call}\n</tool_call>"


class TreeOracle:
    """``plan``: ``("click", target)``, ``("type", text)``, ``("key", "ctrl+a")``, ``("answer", text)``,
    ``("wait", seconds)``, ``("scroll", notches down)``, ``("reply", raw)`` — one per model call, in order. ``driver`` is set once the
    run's driver exists (a ``driver_factory`` does it)."""

    def __init__(self, plan: list[tuple[str, Any]]) -> None:
        self.plan = list(plan)
        self.driver: Any = None
        self.locator = Locator(use_ocr=False)

    def model(self) -> ScriptedModel:
        return ScriptedModel(self, name="oracle")

    def __call__(self, prompt: Any) -> str:
        if not self.plan:
            raise AssertionError("the oracle's plan is done, and the model was asked again")
        verb, arg = self.plan.pop(0)
        if verb == "reply":
            return str(arg)
        if verb in ("click", "double_click", "right_click", "mouse_move"):
            screen = self.driver.observe()
            x, y = self.locator.text(screen, arg, css=getattr(self.driver, "css_nodes", None)).point
            grid = [round(x * 1000 / screen.width), round(y * 1000 / screen.height)]
            name = "left_click" if verb == "click" else verb
            return tool_call({"action": name, "coordinate": grid}, f"{verb} {arg}")
        if verb == "type":
            return tool_call({"action": "type", "text": arg}, f"type {arg!r}")
        if verb == "key":
            return tool_call({"action": "key", "keys": arg.split("+")}, f"press {arg}")
        if verb == "scroll":  # ``arg`` notches down (negative: up), where the pointer is
            return tool_call({"action": "scroll", "pixels": -int(arg)}, f"scroll {arg}")
        if verb == "wait":
            return tool_call({"action": "wait", "time": arg}, "wait for the page")
        if verb == "answer":
            return tool_call({"action": "answer", "text": arg}, "answer")
        raise AssertionError(f"the oracle has no verb {verb!r}")


def miniwob_plan(task: str, utterance: str) -> list[tuple[str, Any]]:
    """What a right answer to a MiniWoB++ episode does, step by step (for benchmarks/agent_eval.py's
    ``--model oracle``: the harness must score it 1)."""
    quoted = re.findall(r'"([^"]*)"', utterance)
    area = {"css": "#area"}
    plans: dict[str, Any] = {
        "click-test": lambda: [("click", "Click Me!")],
        "click-test-2": lambda: [("click", re.search(r"button (\w+)", utterance).group(1))],
        "click-button": lambda: [("click", {"text": quoted[0], "inside": area, "first": True})],
        "click-link": lambda: [("click", {"text": quoted[0], "exact": True, "inside": area, "first": True})],
        "focus-text": lambda: [("click", "role=textbox")],
        "enter-text": lambda: [
            ("click", "role=textbox"),
            ("type", quoted[0]),
            ("click", 'role=button[name="Submit"]'),
        ],
    }
    if task not in plans:
        raise AssertionError(f"the oracle has no plan for {task}")
    return list(plans[task]())
