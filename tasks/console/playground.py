"""The playground: one screenshot, one instruction, one model call — locate, act or ask — with the
raw reply, the parsed call and the point or box in the picture's pixels."""

from __future__ import annotations

import threading
import time
from typing import Any

from PIL import Image

from pixelpilot.agent.errors import ModelError, ModelOutputError
from pixelpilot.agent.models import load_model
from pixelpilot.agent.models.base import VisionModel
from pixelpilot.agent.qwen import grid
from pixelpilot.agent.qwen.parse import parse_grounding, parse_reply, reply_to_action
from pixelpilot.agent.qwen.prompts import act_prompt, ask_prompt, grounding_prompt
from pixelpilot.tools.spaces import get_space

__all__ = ["MODES", "Playground"]

MODES = ("locate", "act", "ask")


class Playground:
    def __init__(self, default_model: str | None) -> None:
        self.default_model = default_model
        self._models: dict[str, VisionModel] = {}
        self._lock = threading.Lock()

    def model(self, spec: str | None) -> VisionModel:
        spec = spec or self.default_model
        if not spec:
            raise ModelError("no model: start the console with --model, or name one in the form")
        with self._lock:  # one load per model, and one call at a time on it
            if spec not in self._models:
                self._models[spec] = load_model(spec)
            return self._models[spec]

    def run(self, image: Image.Image, instruction: str, mode: str, model_spec: str | None) -> dict[str, Any]:
        model = self.model(model_spec)
        size = image.size
        prompt = {
            "locate": lambda: grounding_prompt(instruction, image),
            "act": lambda: act_prompt(get_space("computer_use"), instruction, image),
            "ask": lambda: ask_prompt(instruction, image),
        }[mode]()
        t = time.perf_counter()
        with self._lock:
            reply = model.generate(prompt)
        out: dict[str, Any] = {
            "mode": mode,
            "model": getattr(model, "name", model_spec),
            "raw": reply.text,
            "latency_ms": round((time.perf_counter() - t) * 1000, 1),
            "tokens_in": reply.tokens_in,
            "tokens_out": reply.tokens_out,
            "image": list(size),
            "point": None,
            "box": None,
            "call": None,
            "answer": None,
            "error": None,
        }
        try:
            if mode == "ask":
                parsed = parse_reply(reply.text)
                out["answer"] = parsed.text.strip()
                if parsed.call is not None:
                    out["call"] = {"name": parsed.call.name, "arguments": parsed.call.arguments}
                    out["answer"] = str(parsed.call.arguments.get("text", out["answer"]))
            elif mode == "locate" and _grounded(reply.text, size, out):
                pass
            else:  # act, or a grounding answer given as a tool call
                parsed = parse_reply(reply.text)
                space = get_space("computer_use")
                action, _ = reply_to_action(parsed, space, size, divisor=model.profile.divisor(space.name))
                assert parsed.call is not None
                out["call"] = {"name": parsed.call.name, "arguments": parsed.call.arguments}
                out["action"] = action.model_dump(mode="json")
                out["point"] = list(action.point) if action.point is not None else None
        except (ModelOutputError, ValueError, grid.OffScreen) as exc:
            out["error"] = f"the reply could not be used: {getattr(exc, 'reason', None) or exc}"
        return out


def _grounded(text: str, size: tuple[int, int], out: dict[str, Any]) -> bool:
    try:
        items = parse_grounding(text)
    except (ModelOutputError, ValueError):
        return False
    first = items[0]
    out["call"] = {"label": first.label, "point_2d": first.point, "bbox_2d": first.bbox}
    if first.point is not None:
        out["point"] = list(grid.grid_to_pixels(first.point, size, 1000))
    elif first.bbox is not None:
        x0, y0 = grid.grid_to_pixels(first.bbox[:2], size, 1000)
        x1, y1 = grid.grid_to_pixels(first.bbox[2:], size, 1000)
        out["box"] = [x0, y0, x1 - x0, y1 - y0]
        out["point"] = [(x0 + x1) // 2, (y0 + y1) // 2]
    return True
