"""The OpenAI-compatible backend against a REAL vLLM (CPU build) serving the scripted tiny Qwen3-VL."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from pixelpilot.agent import Agent, ModelError, read_run
from pixelpilot.agent.models.openai import OpenAIModel
from pixelpilot.agent.qwen import QwenProfile, act_prompt, loop_prompt, parse_reply, reply_to_action
from pixelpilot.agent.qwen.prompts import Prompt
from pixelpilot.tools import COMPUTER_USE
from pixelpilot.tools import actions as A

from ..conftest import ROOT, SIGN_IN_SCRIPT, run_dirs

pytestmark = [pytest.mark.browser, pytest.mark.slow]
IMG = Image.new("RGB", (1280, 800), "white")
EXPECTED = A.Click(at=(337, 334))


class Recorder(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return super().handle_request(request)


def to_action(text: str) -> A.Action:
    return reply_to_action(parse_reply(text), COMPUTER_USE, (1280, 800), divisor=1000)[0]


def test_request_shape_and_tool_calls(vllm_server):
    rec = Recorder()
    model = OpenAIModel(vllm_server, transport=rec)
    assert model.model == "tiny-qwen3vl"  # the only served model, found through /v1/models
    reply = model.generate(act_prompt(COMPUTER_USE, "click Sign in", IMG))
    body = json.loads(rec.requests[-1].content)
    assert (
        body["model"] == "tiny-qwen3vl"
        and body["temperature"] == 0.0
        and body["tools"] == [COMPUTER_USE.schema()]
    )
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert user["content"][0] == {"type": "text", "text": "click Sign in"}
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (1280, 800)
    # vLLM's hermes parser returned the call as tool_calls; the backend gives it back as <tool_call> text
    assert reply.extra["tool_calls"] == 1 and reply.finish_reason == "tool_calls"
    assert reply.text == SIGN_IN_SCRIPT
    assert reply.tokens_out == 5 and reply.tokens_in > 1000
    assert to_action(reply.text) == EXPECTED


def test_raw_text_replies_and_streaming_deltas_merge(vllm_server):
    plain = OpenAIModel(vllm_server).generate(loop_prompt(COMPUTER_USE, "Sign in", [], IMG, QwenProfile()))
    assert plain.extra["tool_calls"] == 0 and plain.finish_reason == "stop" and plain.text == SIGN_IN_SCRIPT
    streamed = OpenAIModel(vllm_server, stream=True)
    for prompt in (
        act_prompt(COMPUTER_USE, "click Sign in", IMG),
        loop_prompt(COMPUTER_USE, "Sign in", [], IMG, QwenProfile()),
    ):
        reply = streamed.generate(prompt)
        assert to_action(reply.text) == EXPECTED
        assert reply.tokens_out == 5


def test_server_errors_are_clear(vllm_server):
    model = OpenAIModel(vllm_server)
    nine = [{"type": "image", "image": IMG}] * 9 + [{"type": "text", "text": "hi"}]
    with pytest.raises(ModelError, match=r"refused the request \(400\): At most 8 image\(s\)"):
        model.generate(Prompt("x", [{"role": "user", "content": nine}]))
    long = [{"type": "text", "text": "x " * 20000}]
    with pytest.raises(ModelError, match=r"\(400\): .*maximum context length is 16384 tokens"):
        model.generate(Prompt("x", [{"role": "user", "content": long}]))


def test_the_timeout_bounds_the_whole_request_retries_included(vllm_server):
    sleeps: list[float] = []
    model = OpenAIModel(
        vllm_server, model="tiny-qwen3vl", timeout=0.001, retries=2, backoff=0.25, sleep=sleeps.append
    )
    with pytest.raises(ModelError, match=r"no answer within 0\.001 s; no time left for another try"):
        model.generate(act_prompt(COMPUTER_USE, "click", IMG))
    assert sleeps == []  # no back-off sleep past the deadline


def test_server_down_says_so():
    sleeps: list[float] = []
    with pytest.raises(
        ModelError,
        match=r"the model server at http://127\.0\.0\.1:9/v1 failed GET /models after 3 tries: cannot connect .* is it running\?",
    ):
        OpenAIModel("http://127.0.0.1:9/v1", retries=2, backoff=0.25, sleep=sleeps.append)
    assert sleeps == [0.25, 0.5]  # connection errors are tried again, with back-off, while time is left


def test_goal_loop_through_vllm_clicks_the_right_element(vllm_server, browser, demo_url, tmp_path):
    browser.goto(demo_url)
    with Agent(browser, model=OpenAIModel(vllm_server), output=tmp_path, task="vllm") as agent:
        rec = agent.act("Click the Sign in button")
        assert rec.point == (337, 334)
        assert browser.page.text_content("#login-error") == "Wrong username or password"
        result = agent.run("Sign in", max_steps=5)
    assert result.status == "failed" and "loop guard" in result.reason
    steps = read_run(agent.recorder.path).steps
    assert steps[0].model["backend"] == "openai:" + vllm_server + "#tiny-qwen3vl"


def test_cli_task_with_an_openai_model(vllm_server, chromium, tmp_path):
    task = tmp_path / "vllm.yaml"
    task.write_text(
        f"name: vllm act\nmodel: {{openai: '{vllm_server}'}}\nsteps:\n"
        f"  - open: {(ROOT / 'examples' / 'demo_app' / 'index.html').as_uri()}\n"
        "  - act: Click the Sign in button\n  - see: Wrong username or password\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(task), "--output", str(tmp_path / "runs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = run_dirs(tmp_path / "runs")[0]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["model"].endswith("#tiny-qwen3vl") and meta["model_calls"] == 1


def _prefix_cache(base_url: str) -> tuple[float, float]:
    """vLLM's prefix-cache counters (tokens looked up, tokens found) from its metrics endpoint."""
    text = httpx.get(base_url.removesuffix("/v1") + "/metrics", timeout=30).text
    total = {"vllm:prefix_cache_queries_total": 0.0, "vllm:prefix_cache_hits_total": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in total:
            total[name] += float(line.rsplit(" ", 1)[1])
    return total["vllm:prefix_cache_queries_total"], total["vllm:prefix_cache_hits_total"]


def test_consecutive_loop_steps_hit_vllms_prefix_cache_with_the_blocks_history(vllm_server):
    """With the blocks history a step's prompt extends the previous one, so vLLM finds all of it in its
    prefix cache; with the sliding window only what precedes the first screenshot is found again."""
    from pixelpilot.agent.qwen.prompts import HistoryItem

    model = OpenAIModel(vllm_server)
    found: dict[str, list[tuple[int, int, int]]] = {}
    for form, profile in (
        ("window", QwenProfile(history="window", history_images=2)),
        ("blocks", QwenProfile(history="blocks", history_max=6, history_fold=3)),
    ):
        history: list[HistoryItem] = []
        rows = []
        for k in range(6):
            shade = 40 * k + (7 if form == "blocks" else 0)  # new pictures for each form
            picture = Image.new("RGB", (640, 400), (shade, 255 - shade, 128))
            prompt = loop_prompt(COMPUTER_USE, "Sign in", history, picture, profile)
            before = _prefix_cache(vllm_server)
            reply = model.generate(prompt)
            after = _prefix_cache(vllm_server)
            rows.append((int(after[0] - before[0]), int(after[1] - before[1]), len(prompt.images)))
            history.append(HistoryItem(picture, reply.text, "clicked Sign in"))
        found[form] = rows
    blocks, window = found["blocks"], found["window"]
    for k in (1, 2, 4):  # steps that only append: everything of the previous prompt is found again
        queried, hit, _ = blocks[k]
        previous = blocks[k - 1][0]
        assert hit >= previous - 128, (k, blocks)  # whole cache blocks (128 tokens in vLLM's CPU build)
    for k in (3, 4, 5):  # the window slid: the screenshots after the system prompt are new again
        queried, hit, _ = window[k]
        assert hit < window[k - 1][0] - 250, (k, window)  # a 640x400 screenshot is 250 image tokens


def test_replicas_keep_each_run_on_one_and_a_stopped_one_moves_later_runs(vllm_server, chromium, tmp_path):
    """Two replicas (recording proxies in front of the suite's vLLM): a run's every model call goes to
    one; once one is stopped, the runs that would have gone there go to the other, and say so."""
    from pixelpilot.tasks import RunOptions, run_task
    from tests.support.web import RecordingProxy

    a, b = RecordingProxy(vllm_server), RecordingProxy(vllm_server)
    demo = (ROOT / "examples" / "demo_app" / "index.html").as_uri()

    def run(name: str):  # type: ignore[no-untyped-def]
        task = tmp_path / f"{name}.yaml"
        task.write_text(
            f"name: {name}\nmodel: {{openai: ['{a.url}', '{b.url}']}}\nsteps:\n  - open: {demo}\n"
            "  - act: Click the Sign in button\n  - act: Click the Sign in button\n"
            "  - see: Wrong username or password\n"
        )
        res = run_task(task, RunOptions(output=tmp_path / "runs"))
        assert res.status == "passed", res.error
        endpoints = {c["endpoint"] for s in res.steps if s.model for c in s.model["calls"]}
        return endpoints, read_run(res.run_dir).meta

    try:  # "login" and "checkout" hash to the first replica, "search" to the second
        assert run("login")[0] == {a.url} and a.calls() == ["login", "login"]
        assert run("search")[0] == {b.url} and b.calls() == ["search", "search"]
        a.stop()
        endpoints, meta = run("checkout")
        assert endpoints == {b.url} and b.calls()[-2:] == ["checkout", "checkout"]
        (moved,) = meta["model_failovers"]
        assert moved["from"] == a.url and moved["to"] == b.url and "cannot connect" in moved["why"]
    finally:
        a.stop()
        b.stop()
