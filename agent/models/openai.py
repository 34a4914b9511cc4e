"""The OpenAI-compatible backend: Qwen3-VL behind vLLM (or SGLang, or any server of that API).

Screenshots go as data URLs, the image budget as vLLM's ``mm_processor_kwargs``. Tool calls come back
either parsed (``tool_calls``, vLLM's hermes parser) or as raw ``<tool_call>`` text; both are turned
into ``<tool_call>`` text so one parser reads every backend. Streaming deltas are merged by index.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff; other 4xx are the
server's verdict on the request and are reported with its message.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image

from pixelpilot.agent.errors import ConfigError, ModelError, ServerUnavailable
from pixelpilot.agent.models.base import Reply
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import Prompt

__all__ = ["OpenAIModel", "ServerUnavailable"]

log = logging.getLogger(__name__)


def _data_url(image: Image.Image, fmt: str) -> str:
    buf = io.BytesIO()
    if fmt == "jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    else:
        image.save(buf, format="PNG", compress_level=1)
    return f"data:image/{fmt};base64,{base64.b64encode(buf.getvalue()).decode()}"


class OpenAIModel:
    """A chat-completions server. ``model=None`` uses the only model the server lists."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        profile: QwenProfile | None = None,
        timeout: float = 120.0,
        retries: int = 2,
        backoff: float = 0.5,
        stream: bool = False,
        send_tools: bool = True,
        send_image_budget: bool = False,
        image_format: str = "png",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: Any = None,
        retry_connect: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.profile = profile or QwenProfile()
        self.retries, self.backoff, self.stream = retries, backoff, stream
        self.send_tools, self.image_format = send_tools, image_format
        # vLLM refuses per-request processor kwargs unless started with --trust-request-mm-kwargs;
        # by default the server's own --mm-processor-kwargs sets the image budget.
        self.send_image_budget = send_image_budget
        self._sleep, self._clock = sleep, clock
        self.retry_connect = retry_connect
        """Try again after a refused connection (off for a replica of several: the next one is tried)."""
        if not (timeout > 0 and timeout != float("inf")):
            raise ConfigError(f"the model server's timeout must be a number of seconds > 0, got {timeout!r}")
        self.timeout = float(timeout)
        key = api_key or os.environ.get("PIXELPILOT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=self.timeout,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
            transport=transport,
        )
        self._httpx = httpx
        self.model = model or self._only_model()
        self.name = f"openai:{self.base_url}#{self.model}"

    # -- transport ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> _Answer:
        """One request under one deadline (``timeout`` seconds for every try together, counted over
        the whole body: a server that sends a byte at a time cannot hold a step forever). Connection
        errors, time-outs, 429 and 5xx are tried again while time is left, after the server's
        ``Retry-After`` when it sends one; every failure is a :class:`ModelError`."""
        httpx = self._httpx
        deadline = self._clock() + self.timeout
        last: str | None = None
        wait_for: float | None = None
        attempt = 0
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1) if wait_for is None else wait_for
                if self._clock() + delay >= deadline:
                    last = f"{last}; no time left for another try within {self.timeout:g} s"
                    break
                log.info("retrying %s %s in %.1f s (%s)", method, path, delay, last)
                self._sleep(delay)
            left = deadline - self._clock()
            if left <= 0:
                break
            try:
                answer = self._send(method, path, deadline, timeout=httpx.Timeout(left), **kwargs)
            except _TooSlow:
                last = f"no complete answer within {self.timeout:g} s"
                continue
            except httpx.TimeoutException:
                last = f"no answer within {self.timeout:g} s"
                continue
            except httpx.ConnectError as exc:
                last = f"cannot connect ({_reason(exc)})"
                if not self.retry_connect:
                    break
                continue
            except httpx.HTTPError as exc:  # the connection closed mid-body, a protocol error ...
                last = f"{type(exc).__name__}: {_reason(exc)}"
                continue
            except httpx.InvalidURL as exc:
                raise ModelError(
                    f"the model server's address {self.base_url!r} is not valid: {exc}"
                ) from None
            wait_for = None
            if answer.status in (429, 500, 502, 503, 504):
                last = f"it answered {answer.status}: {answer.message()}"
                wait_for = _retry_after(answer.headers.get("retry-after"))
                continue
            if answer.status >= 400:
                raise ModelError(
                    f"the model server refused the request ({answer.status}): {answer.message()}"
                )
            return answer
        hint = ""
        if last and last.startswith("cannot connect"):
            hint = (
                " — is it running? (e.g. vllm serve Qwen/Qwen3-VL-4B-Instruct --enable-auto-tool-choice "
                "--tool-call-parser hermes)"
            )
        raise ServerUnavailable(
            f"the model server at {self.base_url} failed {method} {path} after {attempt + 1} "
            f"{'try' if attempt == 0 else 'tries'}: {last or 'no time left'}{hint}"
        )

    def _send(self, method: str, path: str, deadline: float, **kwargs: Any) -> _Answer:
        with self._client.stream(method, path, **kwargs) as resp:
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ModelError(
                        f"the model server's answer to {method} {path} is larger than {MAX_ANSWER_BYTES >> 20} MiB"
                    )
                if self._clock() > deadline:
                    raise _TooSlow
            return _Answer(resp.status_code, dict(resp.headers), bytes(body))

    def _only_model(self) -> str:
        data = self._request("GET", "/models").json()
        listed = data.get("data") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise ModelError(
                f"the server at {self.base_url} does not list its models (GET /models): {data!r:.200}"
            )
        ids = [m.get("id") for m in listed if isinstance(m, dict)]
        if len(ids) != 1:
            raise ModelError(
                f"the server at {self.base_url} serves {ids or 'no models'}; say which one (model name)"
            )
        return str(ids[0])

    # -- request -----------------------------------------------------------------------------------
    def _messages(self, prompt: Prompt) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
        out: list[dict[str, Any]] = []
        sizes: list[tuple[int, int]] = []
        for m in prompt.messages:
            content = m["content"]
            if m["role"] in ("system", "assistant") or isinstance(content, str):
                text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
                out.append({"role": m["role"], "content": text})
                continue
            items = []
            for c in content:
                if c.get("type") == "image":
                    sizes.append(c["image"].size)
                    items.append(
                        {"type": "image_url", "image_url": {"url": _data_url(c["image"], self.image_format)}}
                    )
                else:
                    items.append({"type": "text", "text": c["text"]})
            out.append({"role": m["role"], "content": items})
        return out, sizes

    def _body(self, prompt: Prompt, max_new_tokens: int) -> tuple[dict[str, Any], list[tuple[int, int]]]:
        s = self.profile.sampling
        messages, sizes = self._messages(prompt)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": s.temperature if s.do_sample else 0.0,
        }
        if self.send_image_budget:
            body["mm_processor_kwargs"] = {"size": dict(self.profile.image_size)}
        if s.do_sample:
            body.update(
                top_p=s.top_p,
                top_k=s.top_k,
                presence_penalty=s.presence_penalty,
                repetition_penalty=s.repetition_penalty,
            )
        if s.seed is not None:
            body["seed"] = s.seed
        if prompt.tools and self.send_tools:
            body["tools"] = prompt.tools
            body["tool_choice"] = "auto"
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body, sizes

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Reply:
        body, sizes = self._body(prompt, max_new_tokens or self.profile.max_new_tokens)
        t0 = time.perf_counter()
        t_enc = time.perf_counter()
        if self.stream:
            content, calls, usage, finish = self._stream(body)
        else:
            data = self._request("POST", "/chat/completions", json=body).json()
            try:
                choice = data["choices"][0]
                msg = choice["message"]
                if not isinstance(msg, dict) or not isinstance(msg.get("content") or "", str):
                    raise TypeError("message")
                if not isinstance(msg.get("tool_calls") or [], list):
                    raise TypeError("tool_calls")
            except (KeyError, IndexError, TypeError):
                raise ModelError(
                    f"the model server sent an unexpected reply: {json.dumps(data)[:300]}"
                ) from None
            content, calls = msg.get("content") or "", msg.get("tool_calls") or []
            usage, finish = data.get("usage") or {}, choice.get("finish_reason")
        t1 = time.perf_counter()
        text = content + "".join(_call_text(c) for c in calls)
        return Reply(
            text=text,
            tokens_in=usage.get("prompt_tokens"),
            tokens_out=usage.get("completion_tokens"),
            timings={"request": (t1 - t_enc) * 1000, "total": (t1 - t0) * 1000},
            image_sizes=sizes,
            finish_reason=finish,
            extra={"tool_calls": len(calls), "endpoint": self.base_url},
        )

    def _stream(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any], str | None]:
        answer = self._request("POST", "/chat/completions", json=body)
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        finish = None
        for event in _sse(answer.text().splitlines()):
            if event.get("usage"):
                usage = event["usage"]
            for choice in event.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    content.append(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    slot = calls.setdefault(tc.get("index", 0), {"function": {"name": "", "arguments": ""}})
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
                finish = choice.get("finish_reason") or finish
        return "".join(content), [calls[k] for k in sorted(calls)], usage, finish

    def close(self) -> None:
        self._client.close()


def _sse(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        try:
            yield json.loads(payload)
        except json.JSONDecodeError:
            log.warning("skipping an unreadable stream event: %r", payload[:200])


def _call_text(call: dict[str, Any]) -> str:
    """A parsed tool call back in the model's own form."""
    fn = call.get("function") or {}
    args = fn.get("arguments", "{}")
    args_text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return f'<tool_call>\n{{"name": "{fn.get("name", "")}", "arguments": {args_text}}}\n</tool_call>'


MAX_ANSWER_BYTES = 16 << 20
"""The largest answer read from a model server (a reply of 512 tokens is a few kilobytes)."""


class _TooSlow(Exception):
    """The answer did not arrive in full before the request's deadline."""


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise ModelError(
                f"the model server sent something that is not JSON: {self.text()[:200]!r}"
            ) from None

    def message(self) -> str:
        """The error message in the server's answer, shortened."""
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            return self.text()[:300]
        if isinstance(data, dict):
            err = data.get("error", data)
            if isinstance(err, dict):
                return str(err.get("message") or err.get("detail") or err)[:500]
            return str(err)[:500]
        return str(data)[:300]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds, or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
