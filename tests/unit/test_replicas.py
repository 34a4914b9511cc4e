"""Replicas of one model server (``openai: [url, url]``): a run keeps to one, the same for a task's
reruns, says who it is (X-Session-ID), and moves to the next only when its replica is unavailable.
The servers are httpx mock transports; the real vLLM is in tests/integration/test_openai_vllm.py."""

from __future__ import annotations

import httpx
import pytest
from PIL import Image

from pixelpilot.agent.errors import ConfigError, ModelError
from pixelpilot.agent.models import load_model
from pixelpilot.agent.models import replicas as R
from pixelpilot.agent.qwen import QwenProfile, loop_prompt
from pixelpilot.tools import COMPUTER_USE

URLS = ["http://a.test/v1", "http://b.test/v1", "http://c.test/v1"]
PROMPT = loop_prompt(COMPUTER_USE, "Sign in", [], Image.new("RGB", (64, 64)), QwenProfile())


class Servers:
    """Three replicas; ``down`` refuse connections, ``failing`` answer 503."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.failing: set[str] = set()
        self.seen: list[tuple[str, str, str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.seen.append((host, request.url.path, request.headers.get("x-session-id")))
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if host in self.failing:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "qwen"}]})
        return httpx.Response(
            200, json={"choices": [{"message": {"content": f"from {host}"}, "finish_reason": "stop"}]}
        )


@pytest.fixture(autouse=True)
def fresh() -> None:
    R._down.clear()


def model(servers: Servers, session: str, **kw: object) -> R.Replicas:
    return R.Replicas(
        URLS, session=session, transport=httpx.MockTransport(servers), sleep=lambda s: None, **kw
    )


def test_a_run_keeps_to_one_replica_the_same_for_the_same_session():
    servers = Servers()
    hosts = set()
    for task in ("login", "checkout", "search", "export", "invite", "report"):
        m = model(servers, task)
        replies = {m.generate(PROMPT).text for _ in range(3)}
        assert len(replies) == 1  # every call of the run went to one replica
        again = model(servers, task)
        assert again.generate(PROMPT).text == replies.pop()  # the task's next run: the same one
        hosts.add(m.base_url)
    assert len(hosts) >= 2  # different tasks spread over the replicas
    assert {s for _, _, s in servers.seen} == {"login", "checkout", "search", "export", "invite", "report"}


def test_an_unavailable_replica_hands_the_run_to_the_next_for_good():
    servers = Servers()
    m = model(servers, "login")
    first = m.base_url
    servers.down.add(httpx.URL(first).host)
    text = m.generate(PROMPT).text  # the same call, answered by the next replica
    assert text != f"from {httpx.URL(first).host}" and m.base_url != first
    assert m.failovers[0]["from"] == first and "cannot connect" in m.failovers[0]["why"]
    servers.down.clear()
    assert m.generate(PROMPT).text == text  # it stays there (its prefix cache) even once the first is back
    # a run that starts while the first is known down starts elsewhere, without knocking on it
    before = len(servers.seen)
    later = model(servers, "login")
    assert later.base_url != first and all(h != httpx.URL(first).host for h, _, _ in servers.seen[before:])


def test_overload_fails_over_after_the_replicas_own_retries():
    servers = Servers()
    m = model(servers, "login", retries=1)
    servers.failing.add(httpx.URL(m.base_url).host)
    assert m.generate(PROMPT).text.startswith("from ") and len(m.failovers) == 1
    assert "503" in m.failovers[0]["why"]


def test_none_answering_is_one_clear_error_and_a_refusal_is_not_a_failover():
    servers = Servers()
    servers.down |= {"a.test", "b.test", "c.test"}
    with pytest.raises(ModelError, match="none of the 3 model servers answered: .*a.test.*cannot connect"):
        model(servers, "x")
    R._down.clear()
    servers.down.clear()

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "qwen"}]})
        return httpx.Response(400, json={"error": {"message": "image too large"}})

    m = R.Replicas(URLS, session="x", transport=httpx.MockTransport(refuse))
    with pytest.raises(ModelError, match="refused the request \\(400\\): image too large"):
        m.generate(PROMPT)
    assert m.failovers == []  # the server's verdict on the request: another replica would say the same


def test_specs_name_replicas():
    servers = Servers()
    m = load_model(
        "openai:http://a.test/v1,http://b.test/v1#qwen", session="t", transport=httpx.MockTransport(servers)
    )
    assert isinstance(m, R.Replicas) and m.urls == URLS[:2] and m.name.endswith("#qwen")
    with pytest.raises(ConfigError, match="listed twice"):
        load_model("openai:http://a.test/v1,http://a.test/v1/", transport=httpx.MockTransport(servers))
    with pytest.raises(ConfigError, match="need a base URL"):
        load_model("openai:http://a.test/v1,ftp://b")
