"""Canned replies for tests, like httpx's MockTransport: a list of texts, or a function of the prompt."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pixelpilot.agent.errors import ModelError
from pixelpilot.agent.models.base import Reply
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import Prompt

__all__ = ["ScriptedModel"]


class ScriptedModel:
    """Replies in order (or from ``fn(prompt)``); ``prompts`` keeps every prompt it was given."""

    def __init__(
        self,
        replies: Sequence[str] | Callable[[Prompt], str],
        *,
        profile: QwenProfile | None = None,
        name: str = "scripted",
    ) -> None:
        self._replies = replies if callable(replies) else list(replies)
        self.profile = profile or QwenProfile()
        self.name = name
        self.prompts: list[Prompt] = []

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Reply:
        self.prompts.append(prompt)
        if callable(self._replies):
            text = self._replies(prompt)
        else:
            if len(self.prompts) > len(self._replies):
                raise ModelError(
                    f"the scripted model has only {len(self._replies)} replies; call {len(self.prompts)} asked for more"
                )
            text = self._replies[len(self.prompts) - 1]
        return Reply(
            text=text,
            tokens_in=0,
            tokens_out=len(text.split()),
            timings={"total": 0.0},
            image_sizes=[im.size for im in prompt.images],
            finish_reason="stop",
        )

    def close(self) -> None:
        pass
