"""Untrusted input is bounded: task files, model replies, model-server answers.

Each case fails with a clear error that says what and where — never a traceback from inside PyYAML,
json or httpx, never a silent pass, never minutes of work."""

import json
import time

import httpx
import pytest

from pixelpilot.agent.errors import ConfigError, ModelError, ModelOutputError
from pixelpilot.agent.models.openai import OpenAIModel
from pixelpilot.agent.qwen.parse import parse_check, parse_grounding, parse_reply, reply_to_action
from pixelpilot.tasks.spec import load_task
from pixelpilot.tools.spaces import get_space


def load(tmp_path, text: str):
    p = tmp_path / "t.yaml"
    p.write_text(text)
    return load_task(p)


def test_duplicate_keys_are_refused_with_both_lines(tmp_path):
    # the second steps: block silently replaced the first one, failing steps and all
    with pytest.raises(ConfigError, match=r"t.yaml:4: duplicate key 'steps' \(first on line 2\)"):
        load(tmp_path, "name: x\nsteps:\n  - see: a\nsteps:\n  - see: b\n")
    with pytest.raises(ConfigError, match=r":3: duplicate key 'text'"):
        load(tmp_path, "steps:\n  - type: {text: a,\n      text: b}\n")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(96 + i), chr(97 + i)
        levels.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    t = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 100,000 values"):
        load(tmp_path, "\n".join(levels) + "\nsteps:\n  - see: x\n")
    assert time.monotonic() - t < 5  # refused, not expanded (it would take minutes and gigabytes)
    with pytest.raises(ConfigError, match="expands to more than"):
        load(tmp_path, "a: &a [*a]\nsteps:\n  - see: x\n")  # an alias that contains itself


def test_deep_nesting_and_size_are_limited(tmp_path):
    with pytest.raises(ConfigError, match=r"t.yaml:1: nested more than 64 levels deep"):
        load(tmp_path, "steps: " + "[" * 50_000 + "\n")
    with pytest.raises(ConfigError, match=r"the task file is 2\.\d MiB; task files are limited to 1 MiB"):
        load(tmp_path, "steps:\n" + "  - see: aaaaaaaaaaaaaa\n" * 100_000)


def test_an_unclosed_bracket_is_reported_where_it_opened(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "name: x\nsteps:\n  - click: [a, b\n  - see: c\n  - see: d\n\n\n")
    assert err.value.line == 3 and "flow sequence opened here" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'name: "x\nsteps:\n  - see: c\n')
    assert err.value.line == 1 and "quoted scalar opened here" in str(err.value)


COMPUTER = get_space("computer_use")


def action(text: str):
    return reply_to_action(parse_reply(text), COMPUTER, (1280, 800), divisor=1000)[0]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ('{"action": "left_click", "coordinate": [' + "9" * 5000 + ", 1]}", "no tool call"),
        ('{"action": "left_click", "coordinate": ["a", 1]}', "two numbers"),
        ('{"action": "left_click", "coordinate": [1e400, 1]}', "two numbers"),
        ('{"action": "type", "text": 5}', "wrong type"),
        ('{"action": "scroll", "pixels": ' + "9" * 300 + "}", "out of range"),
        ('{"action": "scroll", "pixels": 1e308}', "out of range"),
        ('{"action": "wait", "time": 1e308}', "less than or equal to 600"),
        ('{"action": "key", "keys": [1, 2]}', "key names"),
    ],
)
def test_hostile_tool_calls_are_model_output_errors_with_the_raw_reply(arguments, says):
    raw = f'<tool_call>\n{{"name": "computer_use", "arguments": {arguments}}}\n</tool_call>'
    with pytest.raises(ModelOutputError, match=says) as err:
        action(raw)
    assert err.value.raw == raw


@pytest.mark.parametrize("raw", ["{" * 50_000, "[" * 50_000, "<tool_call>" + '{"a":' * 50_000, "x" * 10**6])
def test_pathological_replies_parse_quickly_to_errors(raw):
    t = time.monotonic()
    with pytest.raises(ModelOutputError):
        action(raw)
    with pytest.raises(ModelOutputError):
        parse_grounding(raw)
    with pytest.raises(ModelOutputError):
        parse_check(raw)
    assert time.monotonic() - t < 2


# -- a model server that misbehaves (in-process transport; the real-socket cases are in integration)
def server(handler) -> OpenAIModel:
    return OpenAIModel(
        "http://model.test/v1",
        "m",
        timeout=5,
        retries=2,
        sleep=lambda s: None,
        transport=httpx.MockTransport(handler),
    )


def test_non_json_and_wrong_shapes_are_model_errors():
    from PIL import Image

    from pixelpilot.agent.qwen import act_prompt

    prompt = act_prompt(COMPUTER, "click", Image.new("RGB", (64, 64)))
    for body in (
        b"<html>oops</html>",
        b"[1, 2]",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": 5}}]}',
    ):
        model = server(lambda req, body=body: httpx.Response(200, content=body))
        with pytest.raises(ModelError, match="not JSON|unexpected reply"):
            model.generate(prompt)


def test_retry_after_is_honoured_and_bounded_by_the_deadline():
    waits: list[float] = []
    calls = []

    def handler(req):
        calls.append(req)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow down"}})
        return httpx.Response(200, json={"object": "list", "data": [{"id": "m"}]})

    model = OpenAIModel(
        "http://model.test/v1", None, timeout=5, sleep=waits.append, transport=httpx.MockTransport(handler)
    )
    assert model.model == "m" and waits == [2.0]
    # a Retry-After past the deadline: fail now, saying why, instead of sleeping past it
    waits.clear()
    model = OpenAIModel(
        "http://model.test/v1",
        "m",
        timeout=5,
        sleep=waits.append,
        transport=httpx.MockTransport(lambda r: httpx.Response(503, headers={"Retry-After": "60"}, json={})),
    )
    with pytest.raises(ModelError, match="503.*no time left for another try within 5 s"):
        model._request("GET", "/models")
    assert waits == []


def test_transport_errors_are_ours():
    def handler(req):
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    with pytest.raises(ModelError, match="after 3 tries: RemoteProtocolError: peer closed"):
        server(handler)._request("GET", "/models")


def test_an_oversized_answer_is_refused():
    big = json.dumps({"data": [{"id": "x" * (17 << 20)}]}).encode()
    with pytest.raises(ModelError, match="larger than 16 MiB"):
        server(lambda r: httpx.Response(200, content=big))._request("GET", "/models")
