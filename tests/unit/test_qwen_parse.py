"""The reply parser: recorded real outputs give the right pixels; mutated replies never crash it."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelpilot.agent.errors import ModelOutputError
from pixelpilot.agent.qwen import grid_to_pixels, parse_check, parse_grounding, parse_reply, reply_to_action
from pixelpilot.tools import COMPUTER_USE, MOBILE_USE
from pixelpilot.tools import actions as A

F1 = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [183, 524]}}\n</tool_call>'
F4 = (
    "Thought: To search for Musk in X, I need to click on the search bar at the top of the screen. This will allow me to type in the search query.\n"
    'Action: "I tapped on the search bar to begin searching for Musk."\n'
    '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "click", "coordinate": [447, 81]}}\n</tool_call>'
)
F5 = '```json\n[\n\t{"bbox_2d": [74, 361, 324, 808], "label": "plate/dish"},\n\t{"bbox_2d": [320, 660, 564, 956], "label": "plate/dish"}\n]\n```'


def test_recorded_computer_use_reply_f1():
    action, facts = reply_to_action(parse_reply(F1), COMPUTER_USE, (2560, 1440), divisor=1000)
    assert action == A.Click(at=(468, 755))  # the reference: (468.5, 754.6)
    assert facts["grid_point"] == [183, 524] and facts["pixel_point"] == [468, 755]


def test_recorded_mobile_reply_f4():
    parsed = parse_reply(F4)
    action, _ = reply_to_action(parsed, MOBILE_USE, (1440, 3120), divisor=999)
    assert action == A.Click(at=(644, 253))  # the cookbook's rescale_coordinates gives [644, 253]
    assert parsed.action_text == "I tapped on the search bar to begin searching for Musk."
    assert parsed.thought.startswith("To search for Musk")


def test_recorded_grounding_reply_f5():
    items = parse_grounding(F5)
    assert len(items) == 2 and items[0].bbox == (74, 361, 324, 808) and items[0].label == "plate/dish"
    assert grid_to_pixels(items[0].bbox[:2], (1000, 500), 1000) == (74, 180)


@pytest.mark.parametrize(
    "reply",
    [
        '<tool_call>{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}</tool_call>',
        'Sure! ```json\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n```',
        'I will click.\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}} done',
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}',
        '<tool_call>\n```json\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n```\n</tool_call>',
        '<tool_call>\n{"name": "computer_use", "arguments": "{\\"action\\": \\"left_click\\", \\"coordinate\\": [500, 500]}"}\n</tool_call>',
        '<tool_call>\n{"action": "left_click", "coordinate": [500, 500]}\n</tool_call>',
        '<think>The button is in the middle. {"name": "x"}</think>\n'
        + '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n</tool_call>',
        "the reasoning of a thinking model</think>\n"
        + '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n</tool_call>',
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n</tool_call>\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "x"}}\n</tool_call>',
    ],
)
def test_tolerant_of_form(reply):
    action, _ = reply_to_action(parse_reply(reply), COMPUTER_USE, (1000, 600), divisor=1000)
    assert action == A.Click(at=(500, 300))


def test_thinking_is_kept_apart():
    parsed = parse_reply("<think>look at the top bar</think>\n" + F1)
    assert parsed.thinking == "look at the top bar" and parsed.call.name == "computer_use"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot see a button.", "no tool call"),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "fly", "coordinate": [1, 2]}}\n</tool_call>',
            "unknown action 'fly'",
        ),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click"}}\n</tool_call>',
            "`coordinate` must be [x, y]",
        ),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [1200, 40]}}\n</tool_call>',
            "outside the 1000x1000 screen",
        ),
        (
            '<tool_call>\n{"name": "browser", "arguments": {"action": "left_click", "coordinate": [1, 2]}}\n</tool_call>',
            "calls 'browser'",
        ),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [1, "a"]}}\n</tool_call>',
            "two numbers",
        ),
        (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "done"}}\n</tool_call>',
            "invalid arguments: status",
        ),
    ],
)
def test_strict_on_content(reply, reason):
    with pytest.raises(ModelOutputError) as info:
        reply_to_action(parse_reply(reply), COMPUTER_USE, (1280, 800), divisor=1000)
    assert reason in info.value.reason
    assert info.value.raw == reply


def test_check_replies():
    assert parse_check('{"result": true, "reason": "the dialog says Order placed"}') == (
        True,
        "the dialog says Order placed",
    )
    assert parse_check('```json\n{"result": false, "reason": "no dialog"}\n```') == (False, "no dialog")
    assert parse_check("Yes. The order confirmation is visible.")[0] is True
    with pytest.raises(ModelOutputError):
        parse_check("maybe")


VALID = json.dumps({"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [250, 750]}})
pieces = st.sampled_from(
    [
        "<tool_call>",
        "</tool_call>",
        "\n",
        "```json",
        "```",
        "{",
        "}",
        "[",
        "]",
        '"',
        ",",
        ":",
        "Action: click",
        "Thought:",
        "<think>",
        "</think>",
        VALID,
        "null",
        "1e309",
        "-5",
        "\\u0000",
        "é",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    base=st.just(f"<tool_call>\n{VALID}\n</tool_call>"),
    cuts=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 8), pieces), max_size=6),
    space=st.sampled_from([COMPUTER_USE, MOBILE_USE]),
)
def test_mutated_replies_never_crash(base, cuts, space):
    text = base
    for pos, drop, piece in cuts:
        pos = min(pos, len(text))
        text = text[:pos] + piece + text[pos + drop :]
    try:
        action = reply_to_action(parse_reply(text), space, (1280, 800), divisor=space.grid)[0]
    except ModelOutputError as exc:
        assert exc.raw == text
    else:
        assert action.action in {
            "click",
            "double_click",
            "right_click",
            "middle_click",
            "triple_click",
            "mouse_move",
            "drag",
            "type",
            "key",
            "scroll",
            "wait",
            "answer",
            "terminate",
            "long_press",
            "swipe",
            "system_button",
        }
        if action.point is not None:
            assert 0 <= action.point[0] < 1280 and 0 <= action.point[1] < 800


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes(text):
    with contextlib.suppress(ModelOutputError):
        reply_to_action(parse_reply(text), COMPUTER_USE, (640, 480), divisor=1000)
    for fn in (parse_grounding, parse_check):
        with contextlib.suppress(ModelOutputError):
            fn(text)
