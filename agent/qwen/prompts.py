"""Prompts for Qwen3-VL, built from package-data templates (Jinja, StrictUndefined).

* ``act_prompt``: one step from a bare instruction — the cookbook's exact form (computer_use: system
  "You are a helpful assistant." + the tool passed as ``tools``; mobile_use: the cookbook's system text).
* ``loop_prompt``: the goal loop — computer_use follows OSWorld's Qwen3-VL agent (the last N steps
  replayed as screenshot/reply turns, older steps as "Step i: ..." text, an Action line before the
  call); mobile_use follows the mobile cookbook (history as a "Task progress" summary).
* ``grounding_prompt``, ``ask_prompt``, ``check_prompt``, ``reask``.

Messages are chat turns whose content is a list of ``{"type": "text", "text": ...}`` and
``{"type": "image", "image": <PIL.Image>}`` items, as ``processor.apply_chat_template`` takes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from PIL import Image

from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.tools.spaces import ActionSpace

__all__ = [
    "HistoryItem",
    "Prompt",
    "act_prompt",
    "ask_prompt",
    "check_prompt",
    "chat_template",
    "grounding_prompt",
    "history_start",
    "loop_prompt",
    "reask",
    "render_text",
]

Message = dict[str, Any]


@dataclass(frozen=True)
class HistoryItem:
    """One earlier step of the goal loop: the screenshot it saw, the model's raw reply, its narration.

    ``frame`` is the image, or anything with an ``image`` attribute that gives it (a Screen, which
    decodes only when a prompt puts the frame in: most of the history is sent as text); None for a
    step that took no frame (typing from the cache), which is then sent as text."""

    frame: Image.Image | Any | None
    reply: str
    narration: str
    result: str | None = None
    """What came back instead of the action's effect (a policy's refusal): sent as the tool's response."""

    @property
    def image(self) -> Image.Image:
        if self.frame is None:
            raise ValueError("this history step has no frame (it was sent as text)")
        return self.frame if isinstance(self.frame, Image.Image) else self.frame.image


@dataclass(frozen=True)
class Prompt:
    kind: str
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    space: str | None = None
    """The action space whose tool call the reply must hold (act and loop prompts)."""

    @property
    def images(self) -> list[Image.Image]:
        return [
            c["image"]
            for m in self.messages
            if isinstance(m["content"], list)
            for c in m["content"]
            if c.get("type") == "image"
        ]

    def digest(self) -> str:
        """sha256 of the rendered text and the images' sizes: equal digests, equal prompts."""
        h = hashlib.sha256(render_text(self).encode())
        for im in self.images:
            h.update(f"{im.size}".encode())
        return h.hexdigest()[:16]


_env = Environment(
    loader=PackageLoader("pixelpilot.agent.qwen", "prompts"),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,
)
_env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)


def _render(name: str, **values: Any) -> str:
    return _env.get_template(name).render(**values)


@cache
def _text(name: str) -> str:
    from importlib import resources

    return resources.files("pixelpilot.agent.qwen").joinpath("prompts", name).read_text("utf-8")


@cache
def chat_template() -> str:
    """The Qwen3-VL Instruct chat template (verbatim, 5292 bytes)."""
    return _text("chat_template.jinja")


@cache
def _compiled_template() -> Any:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = lambda x, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys
    )
    return env.from_string(chat_template())


def render_text(prompt: Prompt, *, add_generation_prompt: bool = True) -> str:
    """The prompt as the model sees it (images as ``<|vision_start|><|image_pad|><|vision_end|>``),
    rendered with the Qwen3-VL chat template exactly as transformers and vLLM render it."""
    return str(
        _compiled_template().render(
            messages=prompt.messages, tools=prompt.tools, add_generation_prompt=add_generation_prompt
        )
    )


def _t(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _i(image: Image.Image) -> dict[str, Any]:
    return {"type": "image", "image": image}


def _system_inline(space: ActionSpace, *, response_format: bool) -> str:
    if space.name == "mobile_use":
        return _text("mobile_use.system.txt")
    text = _render("tools.j2", system=_text("computer_use.system.txt"), tools=[space.schema()])
    if response_format:
        text += "\n\n" + _text("response_format.txt")
    return text


def act_prompt(space: ActionSpace, instruction: str, image: Image.Image) -> Prompt:
    """The cookbook's single-step prompt."""
    if space.name == "mobile_use":
        user = _render("mobile_user.j2", instruction=instruction, history="")
        return Prompt(
            "act",
            [
                {"role": "system", "content": [_t(_text("mobile_use.system.txt"))]},
                {"role": "user", "content": [_t(user), _i(image)]},
            ],
            space=space.name,
        )
    return Prompt(
        "act",
        [
            {"role": "system", "content": [_t(_text("computer_use.system.txt"))]},
            {"role": "user", "content": [_t(instruction), _i(image)]},
        ],
        tools=[space.schema()],
        space=space.name,
    )


def _narration(text: str) -> str:
    return " ".join(text.replace('"', "").split())


def _step_text(h: HistoryItem, profile: QwenProfile) -> str:
    """An earlier step as the profile's history text says it."""
    if profile.narration == "action-line":
        if "Action:" in h.reply and "<tool_call>" in h.reply:
            return h.reply.split("Action:")[1].split("<tool_call>")[0].strip()
        return h.reply
    return _narration(h.narration)


def loop_prompt(
    space: ActionSpace, goal: str, history: Sequence[HistoryItem], image: Image.Image, profile: QwenProfile
) -> Prompt:
    """The goal loop's prompt for the next step."""
    if space.name == "mobile_use" and profile.mobile_loop == "mai-ui":
        return _mai_ui_loop(goal, history, image, profile)
    if space.name == "mobile_use":
        progress = "".join(f"Step {i + 1}: {_narration(h.narration)}; " for i, h in enumerate(history))
        user = _render("mobile_user.j2", instruction=goal, history=progress)
        return Prompt(
            "loop",
            [
                {"role": "system", "content": [_t(_text("mobile_use.system.txt"))]},
                {"role": "user", "content": [_t(user), _i(image)]},
            ],
            meta={"history_text": len(history), "history_images": 0},
            space=space.name,
        )
    first = history_start(len(history), profile)
    recent = list(history[first:])
    while recent and any(h.frame is None for h in recent):  # images only after the last step without one
        recent = recent[1:]
    older = list(history[: len(history) - len(recent)])
    previous = "\n".join(f"Step {i + 1}: {_step_text(h, profile)}" for i, h in enumerate(older)) or "None"
    instruction = _render(profile.loop_instruction, instruction=goal, previous=previous)
    system = (
        _text(profile.loop_system)
        if profile.loop_system
        else _system_inline(space, response_format=profile.response_format)
    )
    messages: list[Message] = [{"role": "system", "content": [_t(system)]}]

    def opening(shot: Image.Image) -> list[dict[str, Any]]:
        return [_t(instruction), _i(shot)] if profile.instruction_first else [_i(shot), _t(instruction)]

    if not recent:
        messages.append({"role": "user", "content": opening(image)})
    else:
        for k, h in enumerate(recent):
            content = opening(h.image) if k == 0 else [_i(h.image)]
            messages.append({"role": "user", "content": content})
            messages.append({"role": "assistant", "content": [_t(h.reply)]})
            if h.result is not None:
                messages.append({"role": "tool", "content": [_t(h.result)]})
        messages.append({"role": "user", "content": [_i(image)]})
    return Prompt(
        "loop",
        messages,
        meta={"history_text": len(older), "history_images": len(recent)},
        space=space.name,
    )


def _mai_ui_loop(
    goal: str, history: Sequence[HistoryItem], image: Image.Image, profile: QwenProfile
) -> Prompt:
    """MAI-UI's agent's messages: its system prompt, the instruction as a user turn, each earlier reply as
    its history rewrites it — after its screenshot for the last ``history_images`` of them — and the
    current screenshot. A reply it could not read is left out, as its agent leaves it out."""
    from pixelpilot.agent.qwen.derivatives import mai_ui_history_reply

    assert profile.mobile_system is not None
    messages: list[Message] = [
        {"role": "system", "content": [_t(_text(profile.mobile_system))]},
        {"role": "user", "content": [_t(goal)]},
    ]
    replies = [(h, r) for h in history if (r := mai_ui_history_reply(h.reply)) is not None]
    first_image = max(0, len(replies) - profile.history_images)
    shown = 0
    for k, (h, reply) in enumerate(replies):
        if k >= first_image and h.frame is not None:
            messages.append({"role": "user", "content": [_i(h.image)]})
            shown += 1
        messages.append({"role": "assistant", "content": [_t(reply)]})
    messages.append({"role": "user", "content": [_i(image)]})
    return Prompt(
        "loop",
        messages,
        meta={"history_text": len(replies) - shown, "history_images": shown},
        space="mobile_use",
    )


def history_start(steps: int, profile: QwenProfile) -> int:
    """The first of ``steps`` earlier steps replayed as a screenshot turn (those before it are text).

    window: the last ``history_images``. blocks: the smallest multiple of ``history_fold`` that keeps
    the prompt's screenshots (the current one included) at most ``history_max`` — constant between
    folds, so that a step only appends to the previous step's prompt."""
    if profile.history == "window":
        n = max(profile.history_images, 0)
        return max(steps - n, 0)
    over = steps + 1 - profile.history_max
    return 0 if over <= 0 else -(-over // profile.history_fold) * profile.history_fold


def grounding_prompt(target: str, image: Image.Image, *, kind: str = "point") -> Prompt:
    """The cookbook's grounding request: no system prompt, image first."""
    name = "grounding_point.j2" if kind == "point" else "grounding_bbox.j2"
    return Prompt("ground", [{"role": "user", "content": [_i(image), _t(_render(name, target=target))]}])


def ask_prompt(question: str, image: Image.Image) -> Prompt:
    return Prompt("ask", [{"role": "user", "content": [_i(image), _t(_render("ask.j2", question=question))]}])


def check_prompt(statement: str, image: Image.Image) -> Prompt:
    return Prompt(
        "check", [{"role": "user", "content": [_i(image), _t(_render("check.j2", statement=statement))]}]
    )


def reask(prompt: Prompt, raw: str, error: str, space: ActionSpace) -> Prompt:
    """The same prompt, the unusable reply, and the error: the model gets one more try."""
    messages = [
        *prompt.messages,
        {"role": "assistant", "content": [_t(raw)]},
        {"role": "user", "content": [_t(_render("reask.j2", error=error, tool=space.name))]},
    ]
    return replace(prompt, messages=messages, meta={**prompt.meta, "reask": True})
