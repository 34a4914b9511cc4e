"""Model quirks in one place: the grid, the image budget, thinking tags, prompt variant, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PROFILES", "QwenProfile", "Sampling", "named_profile"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. Greedy by default (GUI actions); Qwen's README values for sampling are
    ``Sampling(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, presence_penalty=1.5)``."""

    do_sample: bool = False
    temperature: float = 0.7
    top_p: float = 0.8
    top_k: int = 20
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    seed: int | None = None


@dataclass(frozen=True)
class QwenProfile:
    """How to talk to a Qwen3-VL model.

    ``computer_divisor``/``mobile_divisor``: the grid the tool declares (1000x1000 vs 999x999; which one
    the models were trained with is not stated anywhere, so it is a setting). ``image_size`` is the
    processor's ``size`` dict (both bounds, pixels) — 1280·32·32 keeps a 1280×800 screenshot whole
    (1000 image tokens) and shrinks larger screens.

    The goal loop's screenshot history (``history``):

    * ``"window"`` — OSWorld's Qwen3-VL agent: the last ``history_images`` steps replayed as screenshot
      turns, older ones as text. Once the window slides, every step rewrites what follows the system
      prompt (the oldest screenshot drops out, the text above the rest changes): nothing after the
      system prompt is reused from the previous step's KV cache (the local engine's or vLLM's).
    * ``"blocks"`` — screenshots kept until the prompt holds ``history_max`` of them (the current one
      included), then the oldest ``history_fold`` are folded into text at once. Between folds a step
      only *appends* (the last reply, the new screenshot), so everything before is reused from the
      cache; every ``history_fold`` steps one fold recomputes the prompt after the system prompt.
    """

    name: str = "qwen3-vl"
    """Which prompts and parser conventions: ``qwen3-vl`` (the cookbook and OSWorld's Qwen3-VL agent) or
    a GUI-tuned derivative's (:data:`PROFILES`)."""
    computer_divisor: int = 1000
    mobile_divisor: int = 999
    image_size: dict[str, int] = field(
        default_factory=lambda: {"shortest_edge": 64 * 32 * 32, "longest_edge": 1280 * 32 * 32}
    )
    thinking: bool = False
    history: str = "blocks"
    """window or blocks (see above); the default from benchmarks/results/engine_loop_forms_h200.md."""
    history_images: int = 4
    """window: how many recent steps are replayed as screenshots."""
    history_max: int = 8
    """blocks: most screenshots in one prompt, the current one included."""
    history_fold: int = 4
    """blocks: how many of the oldest screenshots are folded into text at once."""
    response_format: bool = True
    """computer_use: append OSWorld's "# Response format" (Action line + tool call) to the system prompt in the goal loop."""
    loop_system: str | None = None
    """computer_use goal loop: a package prompt file sent verbatim as the system prompt (a derivative's own
    tool description and response format) instead of the cookbook's tool rendering."""
    loop_instruction: str = "loop_instruction.j2"
    """The goal loop's instruction text (a package template: the goal and the earlier steps)."""
    instruction_first: bool = False
    """The goal loop's first user turn: the instruction before the screenshot (OSWorld's Qwen3-VL agent puts
    the screenshot first)."""
    narration: str = "osworld"
    """How earlier steps read as text: ``osworld`` (the Action line without quotes, spaces collapsed) or
    ``action-line`` (the reply between ``Action:`` and ``<tool_call>`` as it was, or the whole reply)."""
    mobile_loop: str = "cookbook"
    """mobile_use goal loop: ``cookbook`` (the mobile cookbook: the history as a "Task progress" text) or
    ``mai-ui`` (MAI-UI's agent: the instruction alone, earlier replies as assistant turns, the last
    ``history_images`` screenshots before theirs)."""
    mobile_system: str | None = None
    """mobile_use goal loop: a package prompt file sent verbatim as the system prompt."""
    action_format: str = "tool"
    """How a reply's call is read: ``tool`` (the tool's own actions, after ``action_aliases``) or
    ``mai-ui`` (:func:`pixelpilot.agent.qwen.derivatives.mai_ui_action`)."""
    action_aliases: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Action names the derivative's executor takes besides the tool's, with the arguments they stand for."""
    scroll_unit: int = 100
    """Screen pixels per unit of the model's scroll ``pixels`` (it was trained on wheel clicks; unverified)."""
    max_new_tokens: int = 256
    sampling: Sampling = Sampling()

    def __post_init__(self) -> None:
        if self.history not in ("window", "blocks"):
            raise ValueError(f"history is 'window' or 'blocks', not {self.history!r}")
        if self.history == "blocks" and not 1 <= self.history_fold < self.history_max:
            raise ValueError("blocks history needs 1 <= history_fold < history_max")
        if self.mobile_loop not in ("cookbook", "mai-ui") or self.action_format not in ("tool", "mai-ui"):
            raise ValueError("mobile_loop is 'cookbook' or 'mai-ui'; action_format is 'tool' or 'mai-ui'")
        if self.narration not in ("osworld", "action-line"):
            raise ValueError(f"narration is 'osworld' or 'action-line', not {self.narration!r}")

    def adapt(self, arguments: dict[str, Any], size: tuple[int, int]) -> Any:
        """A tool call's arguments as the profile reads them: an Action already (a derivative's own
        action format, points converted), or the arguments for the tool (aliases applied)."""
        if self.action_format == "mai-ui":
            from pixelpilot.agent.qwen.derivatives import mai_ui_action

            return mai_ui_action(arguments, size)
        return self.alias(arguments)

    def alias(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """A tool call's arguments with a derivative's action name replaced by what it stands for."""
        means = self.action_aliases.get(str(arguments.get("action")))
        if means is None:
            return arguments
        return {**means, **arguments, "action": means["action"]}  # the new name, its defaults where not given

    def divisor(self, space: str) -> int:
        return self.mobile_divisor if space == "mobile_use" else self.computer_divisor

    def with_(self, **changes: Any) -> QwenProfile:
        from dataclasses import replace

        return replace(self, **changes)


GUI_OWL_15 = QwenProfile(
    name="gui-owl-1.5",
    loop_system="gui_owl_1_5.computer_use.system.txt",
    loop_instruction="gui_owl_1_5.loop_instruction.j2",
    instruction_first=True,
    narration="action-line",
    history="window",
    history_images=4,
    image_size={"shortest_edge": 3136, "longest_edge": 10035200},
    action_aliases={
        "click": {"action": "left_click"},
        "right click": {"action": "right_click"},
        "computer_double_click": {"action": "double_click"},
        "hotkey": {"action": "key"},
        "drag": {"action": "left_click_drag"},
        "stop": {"action": "terminate", "status": "success"},
        "done": {"action": "terminate", "status": "success"},
        # "resolve the blocking window by interacting with the user": no one is there to; the run stops
        "interact": {"action": "terminate", "status": "failure"},
    },
)
"""GUI-Owl 1.5 (mPLUG/GUI-Owl-1.5-*, Qwen3-VL derivatives) on a computer, as its published desktop agent
talks to it (X-PLUG/MobileAgent, Mobile-Agent-v3.5/computer_use/utils.py: ``SYSTEM_PROMPT``,
``build_messages``; run_gui_owl_1_5_for_pc.py: the actions it executes): its own system prompt (the tool
with an ``interact`` action, a fixed 1000x1000 screen, its response format), the instruction before the
screenshot, the last 4 steps as screenshots and the older ones as their Action lines, images up to
10035200 pixels. Its executor performs every tool call of a reply; pixelpilot performs the first."""

MAI_UI = QwenProfile(
    name="mai-ui",
    mobile_loop="mai-ui",
    mobile_system="mai_ui.mobile_use.system.txt",
    action_format="mai-ui",
    history="window",
    history_images=2,
    max_new_tokens=2048,
)
"""MAI-UI (Tongyi-MAI/MAI-UI-*, Qwen3-VL derivatives) on Android, as its published agent talks to it
(Tongyi-MAI/MAI-UI ``src/mai_naivigation_agent.py``, ``src/prompt.py``; ``history_n`` 3): its system prompt
(its own action list, ``<thinking>`` before the call), the instruction as its own user turn, earlier
replies rewritten as its history writes them, the last 2 earlier screenshots before theirs, and its action
names (:mod:`pixelpilot.agent.qwen.derivatives`). The desktop and browser keep the cookbook's prompts."""

PROFILES: dict[str, QwenProfile] = {
    "qwen3-vl": QwenProfile(),
    "gui-owl": GUI_OWL_15,
    "gui-owl-1.5": GUI_OWL_15,
    "mai-ui": MAI_UI,
}
"""Profiles by name (``model: {local: <hub id>, profile: gui-owl}``)."""


def named_profile(name: str, *, thinking: bool = False) -> QwenProfile:
    """The profile called ``name``; a clear error naming the known ones otherwise."""
    from pixelpilot.agent.errors import ConfigError

    if name not in PROFILES:
        raise ConfigError(f"unknown model profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    profile = PROFILES[name]
    return profile.with_(thinking=True, max_new_tokens=1024) if thinking else profile
