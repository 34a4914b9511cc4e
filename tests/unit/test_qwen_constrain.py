"""The tool-call grammar the engine decodes under: every reply it allows must become a valid action
(an output that cannot parse must be impossible, not retried), and it must allow what the model is
trained to say."""

from __future__ import annotations

import json

import pytest

from pixelpilot.agent.errors import ModelOutputError
from pixelpilot.agent.qwen.constrain import MAX_TEXT, tool_call_grammar
from pixelpilot.agent.qwen.parse import parse_reply, reply_to_action
from pixelpilot.tools.spaces import get_space

from ..conftest import _need


def call(space: str, **arguments: object) -> str:
    return "<tool_call>\n" + json.dumps({"name": space, "arguments": arguments}) + "\n</tool_call>"


@pytest.fixture(scope="module")
def accepts():
    _need("xgrammar", "bash scripts/install.sh (pip install --no-deps xgrammar apache-tvm-ffi)")
    import xgrammar as xgr
    from xgrammar.testing import _is_grammar_accept_string

    grammars = {
        n: xgr.Grammar.from_ebnf(tool_call_grammar(get_space(n))) for n in ("computer_use", "mobile_use")
    }
    return lambda space, text: _is_grammar_accept_string(grammars[space], text)


ALLOWED = [
    ("computer_use", {"action": "left_click", "coordinate": [0, 1000]}),
    ("computer_use", {"action": "double_click", "coordinate": [512, 384]}),
    ("computer_use", {"action": "type", "text": 'say "hi"\n\\ ok'}),
    ("computer_use", {"action": "key", "keys": ["ctrl", "c"]}),
    ("computer_use", {"action": "scroll", "coordinate": [10, 10], "pixels": -300}),
    ("computer_use", {"action": "wait", "time": 600}),
    ("computer_use", {"action": "wait", "time": 0.5}),
    ("computer_use", {"action": "wait", "time": 599.999}),
    ("computer_use", {"action": "wait"}),
    ("computer_use", {"action": "answer", "text": "42"}),
    ("computer_use", {"action": "terminate", "status": "success"}),
    ("mobile_use", {"action": "click", "coordinate": [999, 0]}),
    ("mobile_use", {"action": "long_press", "coordinate": [5, 5], "time": 2}),
    ("mobile_use", {"action": "swipe", "coordinate": [5, 5], "coordinate2": [5, 900]}),
    ("mobile_use", {"action": "system_button", "button": "Back"}),
    ("mobile_use", {"action": "terminate", "status": "failure"}),
]


@pytest.mark.parametrize(("space", "arguments"), ALLOWED)
def test_what_the_grammar_allows_becomes_an_action(accepts, space, arguments):
    text = call(space, **arguments)
    assert accepts(space, "Action: do it.\n" + text)
    s = get_space(space)
    action, _ = reply_to_action(parse_reply(text), s, (1280, 800), divisor=s.grid)
    assert action.action


REFUSED = [
    # each of these would fail to become an action: the grammar must not let the model say it
    ("computer_use", {"action": "wait", "time": 11111.333}),  # Wait allows 600 s at most
    ("computer_use", {"action": "wait", "time": 600.5}),
    ("computer_use", {"action": "wait", "time": -1}),
    ("computer_use", {"action": "left_click", "coordinate": [1001, 5]}),  # off the 0-1000 grid
    ("computer_use", {"action": "key", "keys": []}),
    ("computer_use", {"action": "fly", "coordinate": [5, 5]}),
    ("mobile_use", {"action": "long_press", "coordinate": [5, 5], "time": -2}),
    ("mobile_use", {"action": "click", "coordinate": [1000, 5]}),  # mobile's grid is 0-999
    ("mobile_use", {"action": "system_button", "button": "Power"}),
]


@pytest.mark.parametrize(("space", "arguments"), REFUSED)
def test_what_could_not_become_an_action_is_refused(accepts, space, arguments):
    text = call(space, **arguments)
    with pytest.raises(ModelOutputError):  # the parser refuses it: so must the grammar
        s = get_space(space)
        reply_to_action(parse_reply(text), s, (1280, 800), divisor=s.grid)
    assert not accepts(space, text)


def test_strings_are_json_strings_of_any_length(accepts):
    """The engine, not the grammar, bounds a string (closing it at the budget's end): a bounded
    repetition made each token inside the text take seconds to mask."""
    long = 'a "quoted" \\ path\twith é and \u00e9 ' * (MAX_TEXT // 8)
    assert accepts("computer_use", call("computer_use", action="type", text=long))
    assert accepts("mobile_use", call("mobile_use", action="answer", text=long))
    assert accepts("computer_use", call("computer_use", action="type", text=""))
    assert accepts("computer_use", call("computer_use", action="key", keys=["x" * 40, "ctrl"]))
    assert not accepts("computer_use", call("computer_use", action="key", keys=["ctrl", ""]))
    raw = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "%s"}}\n</tool_call>'
    assert not accepts("computer_use", raw % 'a"b')  # an unescaped quote ends the string
    assert not accepts("computer_use", raw % "a\\qb")  # no such escape
    assert not accepts("computer_use", raw % "line\nbreak")  # a raw control character
