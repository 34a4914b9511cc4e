"""Model quirks in one place: the grid, the image budget, thinking tags, prompt variant, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["QwenProfile", "Sampling"]


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
    scroll_unit: int = 100
    """Screen pixels per unit of the model's scroll ``pixels`` (it was trained on wheel clicks; unverified)."""
    max_new_tokens: int = 256
    sampling: Sampling = Sampling()

    def __post_init__(self) -> None:
        if self.history not in ("window", "blocks"):
            raise ValueError(f"history is 'window' or 'blocks', not {self.history!r}")
        if self.history == "blocks" and not 1 <= self.history_fold < self.history_max:
            raise ValueError("blocks history needs 1 <= history_fold < history_max")

    def divisor(self, space: str) -> int:
        return self.mobile_divisor if space == "mobile_use" else self.computer_divisor

    def with_(self, **changes: Any) -> QwenProfile:
        from dataclasses import replace

        return replace(self, **changes)
