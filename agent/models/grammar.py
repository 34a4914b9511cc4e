"""The engine's side of constrained decoding (xgrammar): grammars compiled once per tokenizer, and a
matcher per reply that masks the logits, accepts tokens, says what the grammar forces next
(jump-forward) and when only the end may follow. The grammars themselves are in
``agent.qwen.constrain``."""

from __future__ import annotations

import functools
from typing import Any

from pixelpilot.agent.qwen.constrain import RESERVE

CLOSE_ROOM = 24
"""Tokens before the end of a reply's budget from which an open string is closed: room for its
quote, the rest of the call (``"}}\n</tool_call>``, jumped) and the end."""

__all__ = ["Grammars", "ReplyMatcher"]


class Grammars:
    """Compiled grammars for one tokenizer: its vocabulary is read into xgrammar once."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: set[int]) -> None:
        self.tokenizer, self.vocab_size, self.stop_ids = tokenizer, vocab_size, stop_ids
        self._compiler: Any = None
        self._compiled: dict[str, Any] = {}

    def matcher(self, grammar: str, device: Any) -> ReplyMatcher:
        import xgrammar as xgr

        if self._compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(
                self.tokenizer, vocab_size=self.vocab_size, stop_token_ids=sorted(self.stop_ids)
            )
            self._compiler = xgr.GrammarCompiler(info)
        if grammar not in self._compiled:
            self._compiled[grammar] = self._compiler.compile_grammar(grammar)
        call_id = self.tokenizer.convert_tokens_to_ids("<tool_call>")
        return ReplyMatcher(xgr.GrammarMatcher(self._compiled[grammar]), self, device, call_id)

    @functools.cached_property
    def closers(self) -> list[int]:
        """The tokens that close what may be open inside a call, in the order tried: a string's
        quote, then a list's bracket (each only where the grammar allows it)."""
        ids = [self.tokenizer.encode(text, add_special_tokens=False) for text in ('"', "]")]
        return [i[0] for i in ids if len(i) == 1]


class ReplyMatcher:
    """One reply under a grammar. ``in_call`` turns true with the ``<tool_call>`` token; until then
    the reply is free text."""

    def __init__(self, matcher: Any, grammars: Grammars, device: Any, call_id: int) -> None:
        import xgrammar as xgr

        self.matcher, self.grammars, self.call_id = matcher, grammars, call_id
        self.bitmask = xgr.allocate_token_bitmask(1, grammars.vocab_size)
        self._on_device = self.bitmask.to(device)
        if getattr(device, "type", device) == "cuda":
            self.bitmask = self.bitmask.pin_memory()
        self.in_call = False

    @staticmethod
    def budget(max_new_tokens: int) -> int:
        """The reply's budget: the free text may take ``max_new_tokens`` (the call starts then at the
        latest), the call always has ``RESERVE`` more. (It was ``max(max_new_tokens, RESERVE + 16)``:
        with the default 256 the call was forced after 16 tokens of free text, mid-thought.)"""
        return max_new_tokens + RESERVE

    @property
    def terminated(self) -> bool:
        return bool(self.matcher.is_terminated())

    def mask(self, logits: Any) -> None:
        """Rule out, in place, every token the grammar does not allow next."""
        import xgrammar as xgr

        self.matcher.fill_next_token_bitmask(self.bitmask)
        self._on_device.copy_(self.bitmask, non_blocking=True)
        xgr.apply_token_bitmask_inplace(logits, self._on_device)

    def must_start_call(self, produced: int, max_new_tokens: int) -> bool:
        """The free text ran long: the call must start now, while it still fits (and may: the last
        ``mask`` allowed it)."""
        return not self.in_call and produced >= max_new_tokens - RESERVE and self._allowed(self.call_id)

    def closing(self, produced: int, max_new_tokens: int) -> int | None:
        """The budget's last ``CLOSE_ROOM`` tokens have come inside the call: the token that closes an
        open string (or then a list of keys), where the grammar allows one (the last ``mask`` says);
        jump-forward then appends the rest of the call. None otherwise."""
        if not self.in_call or produced < max_new_tokens - CLOSE_ROOM:
            return None
        return next((t for t in self.grammars.closers if self._allowed(t)), None)

    def accept(self, token: int) -> None:
        if not self.matcher.accept_token(token):
            raise RuntimeError(f"the grammar refused token {token} (engine bug)")
        if token == self.call_id:
            self.in_call = True

    def forced_text(self) -> str:
        """What the grammar allows as the only continuation (jump-forward), possibly nothing."""
        return str(self.matcher.find_jump_forward_string())

    def only_end(self) -> list[int]:
        """The stop tokens, when the reply is complete and nothing but them may follow; else []."""
        if not self.matcher.is_completed():
            return []
        self.matcher.fill_next_token_bitmask(self.bitmask)
        stops = [t for t in self.grammars.stop_ids if self._allowed(t)]
        if not stops:
            return []
        bits = self.bitmask[0].clone()
        for t in stops:
            bits[t // 32] &= ~(1 << (t % 32))
        return [] if bool((bits != 0).any()) else stops

    def _allowed(self, token: int) -> bool:
        return bool((int(self.bitmask[0, token // 32]) >> (token % 32)) & 1)
