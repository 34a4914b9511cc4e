"""The model seam: ``VisionModel.generate(prompt) -> Reply``. Backends own transport and speed tricks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import Prompt

__all__ = ["Reply", "VisionModel"]


@dataclass
class Reply:
    """What a backend returns. ``text`` holds any tool call as ``<tool_call>`` text, whatever the
    transport returned it as, so one parser reads every backend."""

    text: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    """Milliseconds: preprocess, generate (or request), total."""
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    """Sizes of the images as the model received them (after the image budget), when known."""
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VisionModel(Protocol):
    name: str
    profile: QwenProfile

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Reply: ...

    def close(self) -> None: ...
