"""The OpenAI-compatible backend: Qwen3-VL behind vLLM (or SGLang, or any server of that API).

Screenshots go as data URLs, the image budget as vLLM's ``mm_processor_kwargs``. Tool calls come back
either parsed (``tool_calls``, vLLM's hermes parser) or as raw ``<tool_call>`` text; both are turned
into ``<tool_call>`` text so one parser reads every backend. Streaming deltas are merged by index.
Connection errors, timeouts, 429 and 5xx are retried with exponential backoff; other 4xx are the
server's verdict on the request and are reported with its message.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from ..errors import ModelError
from ..qwen.profile import QwenProfile
from ..qwen.prompts import Prompt
from .base import Reply

__all__ = ["OpenAIModel"]

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
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.profile = profile or QwenProfile()
        self.retries, self.backoff, self.stream = retries, backoff, stream
        self.send_tools, self.image_format = send_tools, image_format
        # vLLM refuses per-request processor kwargs unless started with --trust-request-mm-kwargs;
        # by default the server's own --mm-processor-kwargs sets the image budget.
        self.send_image_budget = send_image_budget
        self._sleep = sleep
        key = api_key or os.environ.get("PIXELPILOT_API_KEY") or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self._client = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
            transport=transport,
        )
        self._httpx = httpx
        self.model = model or self._only_model()
        self.name = f"openai:{self.base_url}#{self.model}"

    # -- transport ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        httpx = self._httpx
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                log.info("retrying %s %s in %.1f s (%s)", method, path, delay, last)
                self._sleep(delay)
            try:
                resp = self._client.request(method, path, **kwargs)
            except httpx.ConnectError as exc:
                last = exc
                continue
            except httpx.TimeoutException as exc:
                last = exc
                continue
            if resp.status_code in (429, 500, 502, 503, 504):
                last = ModelError(f"the model server answered {resp.status_code}: {_message(resp)}")
                continue
            if resp.status_code >= 400:
                raise ModelError(
                    f"the model server refused the request ({resp.status_code}): {_message(resp)}"
                )
            return resp
        if isinstance(last, httpx.ConnectError):
            raise ModelError(
                f"no model server at {self.base_url}: connection refused after {self.retries + 1} tries — "
                "is it running? (e.g. vllm serve Qwen/Qwen3-VL-4B-Instruct --enable-auto-tool-choice --tool-call-parser hermes)"
            ) from last
        if isinstance(last, httpx.TimeoutException):
            raise ModelError(
                f"the model server at {self.base_url} did not answer within {self._client.timeout.read} s ({self.retries + 1} tries)"
            ) from last
        assert last is not None
        raise last

    def _only_model(self) -> str:
        data = self._request("GET", "/models").json()
        ids = [m.get("id") for m in data.get("data", [])]
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
            extra={"tool_calls": len(calls)},
        )

    def _stream(self, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any], str | None]:
        resp = self._request("POST", "/chat/completions", json=body)
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        finish = None
        for event in _sse(resp.iter_lines()):
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


def _sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
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


def _message(resp: Any) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("detail") or err)[:500]
        return str(err)[:500]
    return str(data)[:300]
