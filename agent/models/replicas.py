"""Several replicas of one OpenAI-compatible model server (vLLM behind no router, or one per GPU host).

A run keeps to one replica — the one its ``session`` key hashes to, so that reruns of a task meet the
prefix cache they filled — and moves to the next only when that one is unavailable (refused
connections, time-outs, 429/5xx after its retries), for the rest of the run. Each request also carries
``X-Session-ID: <session>``, the header routers that keep a session on one replica look at. A replica
found unavailable is skipped by the runs that start in this process during the next ``cooldown``
seconds (a long-lived worker does not knock on a dead server each task).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

from pixelpilot.agent.errors import ConfigError, ModelError
from pixelpilot.agent.models.base import Reply
from pixelpilot.agent.models.openai import OpenAIModel, ServerUnavailable
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import Prompt

__all__ = ["Replicas"]

log = logging.getLogger(__name__)

_down: dict[str, float] = {}
"""Replicas found unavailable, and when (this process)."""
_down_lock = threading.Lock()


class Replicas:
    """:class:`OpenAIModel` over several base URLs of the same model; the same ``generate``."""

    def __init__(
        self,
        base_urls: Sequence[str],
        model: str | None = None,
        *,
        session: str | None = None,
        cooldown: float = 60.0,
        **options: Any,
    ) -> None:
        urls = [u.rstrip("/") for u in base_urls if u.strip()]
        if not urls:
            raise ConfigError("openai replicas: no base URL given")
        if len(set(urls)) != len(urls):
            raise ConfigError(f"openai replicas: a base URL is listed twice ({', '.join(urls)})")
        self.urls = urls
        self.session = session or uuid.uuid4().hex[:12]
        first = zlib.crc32(self.session.encode()) % len(urls)
        self._order = urls[first:] + urls[:first]
        self._model, self._options, self.cooldown = model, options, cooldown
        self._options.setdefault("retry_connect", len(urls) == 1)
        self.failovers: list[dict[str, str]] = []
        """Each move to another replica: from, to, why."""
        self._current: OpenAIModel | None = None
        self.base_url = self.name = ""
        """The replica in use (``openai:<url>#<model>``), as :class:`OpenAIModel` names itself."""
        self.profile: QwenProfile
        self._tried: set[str] = set()
        self._next("the run started")

    def _next(self, why: str) -> None:
        """Move to the next replica that answers (skipping those known down unless none is left)."""
        previous = self._current.base_url if self._current is not None else None
        if self._current is not None:
            self._current.close()
            self._current = None
        now = time.monotonic()
        with _down_lock:
            fresh = [u for u in self._order if now - _down.get(u, -1e9) > self.cooldown]
        candidates = [u for u in fresh if u not in self._tried]
        candidates += [u for u in self._order if u not in self._tried and u not in candidates]
        problems: list[str] = []
        for url in candidates:
            self._tried.add(url)
            try:
                model = OpenAIModel(url, self._model, headers={"X-Session-ID": self.session}, **self._options)
            except ServerUnavailable as exc:
                self._mark_down(url)
                problems.append(str(exc))
                continue
            self._current = model
            self.base_url, self.name, self.profile = model.base_url, model.name, model.profile
            if previous is None and url != self._order[0]:  # the run's own replica was passed over
                previous = self._order[0]
                why = problems[0] if problems else f"found unavailable within the last {self.cooldown:g} s"
            if previous is not None:
                self.failovers.append({"from": previous, "to": url, "why": why})
                log.warning(
                    "model server %s is unavailable (%s); this run goes on with %s", previous, why, url
                )
            return
        raise ModelError(
            f"none of the {len(self.urls)} model servers answered: " + "; ".join(problems or [why])
        )

    def _mark_down(self, url: str) -> None:
        with _down_lock:
            _down[url] = time.monotonic()

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Reply:
        while True:
            assert self._current is not None
            try:
                return self._current.generate(prompt, max_new_tokens=max_new_tokens)
            except ServerUnavailable as exc:
                self._mark_down(self._current.base_url)
                self._next(str(exc))  # raises when none is left

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
