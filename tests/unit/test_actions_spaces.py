import json

import pytest
from pydantic import ValidationError

from pixelpilot.tools import COMPUTER_USE, MOBILE_USE, get_space, parse_action
from pixelpilot.tools import actions as A

COMPUTER_ACTIONS = [
    "key",
    "type",
    "mouse_move",
    "left_click",
    "left_click_drag",
    "right_click",
    "middle_click",
    "double_click",
    "triple_click",
    "scroll",
    "hscroll",
    "wait",
    "terminate",
    "answer",
]
MOBILE_ACTIONS = ["click", "long_press", "swipe", "type", "answer", "system_button", "wait", "terminate"]


def test_schemas_are_the_qwen_tools():
    cu = COMPUTER_USE.schema()
    assert cu["function"]["name"] == "computer_use"
    assert COMPUTER_USE.actions == COMPUTER_ACTIONS
    assert "* The screen's resolution is 1000x1000." in cu["function"]["description"]
    mu = MOBILE_USE.schema()
    assert MOBILE_USE.actions == MOBILE_ACTIONS
    assert "* The screen's resolution is 999x999." in mu["function"]["description"]
    # serialised exactly as the model saw it in training (json.dumps default separators, key order kept)
    assert json.dumps(cu, ensure_ascii=False) == COMPUTER_USE.schema_json()
    assert json.dumps(mu, ensure_ascii=False) == MOBILE_USE.schema_json()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"action": "left_click", "coordinate": [10, 20]}, A.Click(at=(10, 20))),
        ({"action": "right_click", "coordinate": [1, 2]}, A.RightClick(at=(1, 2))),
        ({"action": "middle_click", "coordinate": [1, 2]}, A.MiddleClick(at=(1, 2))),
        ({"action": "double_click", "coordinate": [1, 2]}, A.DoubleClick(at=(1, 2))),
        ({"action": "triple_click", "coordinate": [1, 2]}, A.TripleClick(at=(1, 2))),
        ({"action": "mouse_move", "coordinate": [5.6, 2.2]}, A.MouseMove(at=(6, 2))),
        ({"action": "left_click_drag", "coordinate": [7, 8]}, A.Drag(end=(7, 8))),
        ({"action": "key", "keys": ["ctrl", "a"]}, A.Key(keys=["ctrl", "a"])),
        ({"action": "type", "text": "héllo"}, A.Type(text="héllo")),
        ({"action": "scroll", "pixels": -3}, A.Scroll(dy=300)),
        ({"action": "hscroll", "pixels": 2, "coordinate": [4, 4]}, A.Scroll(at=(4, 4), dx=200)),
        ({"action": "wait", "time": 2}, A.Wait(seconds=2)),
        ({"action": "terminate", "status": "success"}, A.Terminate(status="success")),
        ({"action": "answer", "text": "42"}, A.Answer(text="42")),
    ],
)
def test_computer_use_maps_to_actions_and_back(args, expected):
    action = COMPUTER_USE.to_action(args)
    assert action == expected
    assert COMPUTER_USE.to_action(COMPUTER_USE.to_arguments(action)) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"action": "click", "coordinate": [10, 20]}, A.Click(at=(10, 20))),
        ({"action": "long_press", "coordinate": [1, 2], "time": 2}, A.LongPress(at=(1, 2), duration=2)),
        ({"action": "swipe", "coordinate": [1, 2], "coordinate2": [3, 4]}, A.Swipe(start=(1, 2), end=(3, 4))),
        ({"action": "type", "text": "日本"}, A.Type(text="日本")),
        ({"action": "system_button", "button": "Back"}, A.SystemButton(button="Back")),
        ({"action": "answer", "text": "yes"}, A.Answer(text="yes")),
        ({"action": "wait", "time": 1}, A.Wait(seconds=1)),
        ({"action": "terminate", "status": "failure"}, A.Terminate(status="failure")),
    ],
)
def test_mobile_use_maps_to_actions_and_back(args, expected):
    action = MOBILE_USE.to_action(args)
    assert action == expected
    assert MOBILE_USE.to_action(MOBILE_USE.to_arguments(action)) == expected


@pytest.mark.parametrize(
    ("space", "args", "message"),
    [
        (COMPUTER_USE, {"action": "fly"}, "unknown action 'fly'"),
        (COMPUTER_USE, {"action": "left_click"}, "`coordinate` must be [x, y]"),
        (COMPUTER_USE, {"action": "left_click", "coordinate": [1]}, "`coordinate` must be [x, y]"),
        (COMPUTER_USE, {"action": "left_click", "coordinate": ["a", 1]}, "two numbers"),
        (COMPUTER_USE, {"action": "key", "keys": []}, "non-empty list"),
        (COMPUTER_USE, {"action": "type"}, "needs `text`"),
        (MOBILE_USE, {"action": "left_click", "coordinate": [1, 2]}, "unknown action"),
        (MOBILE_USE, {"action": "swipe", "coordinate": [1, 2]}, "`coordinate2`"),
    ],
)
def test_bad_arguments_say_why(space, args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        space.to_action(args)


def test_invalid_values_are_rejected_by_the_schema():
    with pytest.raises(ValidationError):
        MOBILE_USE.to_action({"action": "system_button", "button": "Power"})
    with pytest.raises(ValidationError):
        COMPUTER_USE.to_action({"action": "left_click", "coordinate": [-5, 3]})


def test_parse_action_is_discriminated_by_action():
    assert parse_action({"action": "click", "at": [3, 4]}) == A.Click(at=(3, 4))
    assert parse_action('{"action": "key", "keys": ["enter"]}') == A.Key(keys=["enter"])
    with pytest.raises(ValidationError):
        parse_action({"action": "click", "at": [3, 4], "extra": 1})
    assert get_space("mobile_use") is MOBILE_USE
    with pytest.raises(ValueError, match="unknown action space"):
        get_space("tv_use")


def test_actions_not_in_a_space_are_refused():
    with pytest.raises(ValueError, match="no form in mobile_use"):
        MOBILE_USE.to_arguments(A.Key(keys=["a"]))
