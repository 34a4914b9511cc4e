"""Model profiles for GUI-tuned Qwen3-VL derivatives: the prompts their published agents send, byte for
byte, and the action names their executors take.

GUI-Owl 1.5: published_gui_owl_1_5_computer_use_system.txt is ``SYSTEM_PROMPT`` of X-PLUG/MobileAgent
Mobile-Agent-v3.5/computer_use/utils.py as it evaluates; :func:`published_messages` follows that file's
``build_messages`` (the instruction text, the last 4 steps as screenshot turns, the older ones as their
``Action:`` text), in the chat-message form the processor takes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.qwen.parse import parse_reply, reply_to_action
from pixelpilot.agent.qwen.profile import GUI_OWL_15, PROFILES, QwenProfile, named_profile
from pixelpilot.agent.qwen.prompts import HistoryItem, loop_prompt, render_text
from pixelpilot.tasks.spec import TaskFile
from pixelpilot.tools import actions as A
from pixelpilot.tools.spaces import get_space

HERE = Path(__file__).parent
PUBLISHED = (HERE / "published_gui_owl_1_5_computer_use_system.txt").read_text()


def shot(n: int) -> Image.Image:
    return Image.new("RGB", (320 + n, 200), (n * 20 % 255, 80, 120))


def reply(n: int) -> str:
    return (
        f'Action: Click the "Item {n}" link.\n<tool_call>\n'
        f'{{"name": "computer_use", "arguments": {{"action": "left_click", "coordinate": [{n}0, 50]}}}}\n</tool_call>'
    )


def published_messages(
    instruction: str, outputs: list[str], images: list[Image.Image], current: Image.Image
) -> list:
    """GUI-Owl 1.5's build_messages (history_n=4), with images as the processor's message items."""
    history_n = 4
    start = max(0, len(outputs) - history_n)
    previous = []
    for i in range(start):
        text = outputs[i]
        if "Action:" in text and "<tool_call>" in text:
            text = text.split("Action:")[1].split("<tool_call>")[0].strip()
        previous.append(f"Step {i + 1}: {text}")
    prompt = (
        "Please generate the next move according to the UI screenshot, instruction and previous actions.\n\n"
        f"Instruction: {instruction}\n\nPrevious actions:\n{chr(10).join(previous) if previous else 'None'}"
    )
    text = lambda t: {"type": "text", "text": t}  # noqa: E731
    image = lambda i: {"type": "image", "image": i}  # noqa: E731
    messages = [{"role": "system", "content": [text(PUBLISHED)]}]
    if outputs:
        for idx, (out, img) in enumerate(zip(outputs[-history_n:], images[-history_n:], strict=True)):
            messages.append(
                {"role": "user", "content": [text(prompt), image(img)] if idx == 0 else [image(img)]}
            )
            messages.append({"role": "assistant", "content": [text(out)]})
        messages.append({"role": "user", "content": [image(current)]})
    else:
        messages.append({"role": "user", "content": [text(prompt), image(current)]})
    return messages


@pytest.mark.parametrize("steps", [0, 1, 4, 6])
def test_gui_owl_goal_loop_prompt_is_the_published_agents_byte_for_byte(steps):
    goal = "Open the 'Reports' page and export it as CSV"
    outputs = [reply(i) for i in range(steps)]
    images = [shot(i) for i in range(steps)]
    history = [HistoryItem(images[i], outputs[i], f"Click the Item {i} link.") for i in range(steps)]
    ours = loop_prompt(get_space("computer_use"), goal, history, shot(99), GUI_OWL_15)
    theirs = published_messages(goal, outputs, images, shot(99))
    assert ours.messages == theirs
    assert ours.tools is None  # the tool is inside the system text, as the published agent sends it
    rendered = render_text(ours)
    assert rendered.startswith("<|im_start|>system\n# Tools\n\nYou may call one or more functions")
    assert "`interact`: Resolve the blocking window" in rendered and "- Be brief: one for Action." in rendered
    if steps > 4:  # steps before the window: their Action text, quotes kept (the cookbook profile drops them)
        assert 'Step 1: Click the "Item 0" link.' in rendered


def test_the_cookbook_profile_is_unchanged_by_the_profile_fields():
    history = [HistoryItem(shot(i), reply(i), f'Click the "Item {i}" link.') for i in range(6)]
    prompt = loop_prompt(get_space("computer_use"), "goal", history, shot(99), QwenProfile(history="window"))
    first_user = prompt.messages[1]["content"]
    assert first_user[0]["type"] == "image" and first_user[1]["type"] == "text"  # OSWorld: screenshot first
    assert "Step 1: Click the Item 0 link." in first_user[1]["text"]
    assert prompt.messages[0]["content"][0]["text"].startswith("You are a helpful assistant.")


def test_gui_owl_action_names_map_to_the_tools_actions():
    space = get_space("computer_use")

    def act(arguments: str) -> A.Action:
        parsed = parse_reply(
            f'<tool_call>\n{{"name": "computer_use", "arguments": {arguments}}}\n</tool_call>'
        )
        return reply_to_action(parsed, space, (1000, 500), divisor=1000, profile=GUI_OWL_15)[0]

    assert act('{"action": "click", "coordinate": [500, 500]}') == A.Click(at=(500, 250))
    assert act('{"action": "hotkey", "keys": ["ctrl", "s"]}') == A.Key(keys=["ctrl", "s"])
    assert act('{"action": "computer_double_click", "coordinate": [10, 10]}') == A.DoubleClick(at=(10, 5))
    assert act('{"action": "done"}') == A.Terminate(status="success")  # its executor's default status
    assert act('{"action": "stop", "status": "failure"}') == A.Terminate(status="failure")
    stop = act('{"action": "interact", "text": "Please log in for me"}')
    assert stop == A.Terminate(status="failure")
    # the cookbook profile does not know these names: the model is told what it may use
    parsed = parse_reply(
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "click", "coordinate": [1, 1]}}\n</tool_call>'
    )
    with pytest.raises(Exception, match="unknown action 'click'"):
        reply_to_action(parsed, space, (100, 100), divisor=1000, profile=QwenProfile())


def test_profiles_are_chosen_by_name_in_a_task_file_and_unknown_names_are_refused():
    task = TaskFile.model_validate(
        {"model": {"local": "mPLUG/GUI-Owl-1.5-4B-Instruct", "profile": "gui-owl"}, "steps": [{"act": "x"}]}
    )
    assert task.model.profile == "gui-owl"
    task = TaskFile.model_validate(
        {"model": {"openai": "http://h:8000/v1", "profile": "gui-owl-1.5"}, "steps": [{"act": "x"}]}
    )
    assert task.model.profile == "gui-owl-1.5"
    with pytest.raises(
        Exception, match="unknown profile 'ui-tars'; known: gui-owl, gui-owl-1.5, mai-ui, qwen3-vl"
    ):
        TaskFile.model_validate({"model": {"local": "x", "profile": "ui-tars"}, "steps": [{"act": "x"}]})
    assert named_profile("gui-owl") is PROFILES["gui-owl-1.5"]
    assert named_profile("gui-owl", thinking=True).thinking
    with pytest.raises(ConfigError, match="unknown model profile"):
        named_profile("nope")


def test_a_local_model_takes_a_profile_by_name(tiny_scripted_dir):
    from pixelpilot.agent.models import load_model

    model = load_model(str(tiny_scripted_dir), profile="gui-owl", allow_cpu=True)
    assert model.profile is GUI_OWL_15
    # the real processor renders the published system prompt for it
    prompt = loop_prompt(get_space("computer_use"), "Sign in", [], shot(1), model.profile)
    reply_text = model.generate(prompt).text
    assert "left_click" in reply_text


# -- MAI-UI ---------------------------------------------------------------------------------------------
MAI_PUBLISHED = (HERE / "published_mai_ui_mobile_system.txt").read_text(encoding="utf-8")


def mai_reply(thinking: str, arguments: dict) -> str:
    call = json.dumps({"name": "mobile_use", "arguments": arguments}, ensure_ascii=False)
    return f"<thinking>\n{thinking}\n</thinking>\n<tool_call>\n{call}\n</tool_call>"


def mai_published_history(raw: str) -> str:
    """MAI-UI's parse_action_to_structure_output, then its history_responses, as published."""
    m = re.search(r"<thinking>(.*?)</thinking>.*?<tool_call>(.*?)</tool_call>", raw.strip(), re.DOTALL)
    thinking, action = m.group(1).strip().strip('"'), json.loads(m.group(2).strip().strip('"'))["arguments"]
    if "coordinate" in action:
        c = action["coordinate"]
        x, y = c if len(c) == 2 else ((c[0] + c[2]) / 2, (c[1] + c[3]) / 2)
        action["coordinate"] = [x / 999, y / 999]
        action["coordinate"] = [int(action["coordinate"][0] * 999), int(action["coordinate"][1] * 999)]
    call = json.dumps({"name": "mobile_use", "arguments": action}, separators=(",", ":"))
    return f"<thinking>\n{thinking}\n</thinking>\n<tool_call>\n{call}\n</tool_call>"


def mai_published_messages(instruction: str, outputs: list[str], images: list, current) -> list:
    """MAI-UI's _build_messages with history_n=3 (its default), images as the processor's items."""
    history_n = 3
    text = lambda t: {"type": "text", "text": t}  # noqa: E731
    image = lambda i: {"type": "image", "image": i}  # noqa: E731
    messages = [
        {"role": "system", "content": [text(MAI_PUBLISHED)]},
        {"role": "user", "content": [text(instruction)]},
    ]
    kept = images[-(history_n - 1) :] if outputs and history_n - 1 > 0 else []
    pics = [*kept, current]
    responses = [mai_published_history(o) for o in outputs]
    if responses:
        start, n = max(0, len(responses) - (history_n - 1)), 0
        for idx, response in enumerate(responses):
            if idx >= start:
                if n < len(pics) - 1:
                    messages.append({"role": "user", "content": [image(pics[n])]})
                n += 1
            messages.append({"role": "assistant", "content": [text(response)]})
        if n < len(pics):
            messages.append({"role": "user", "content": [image(pics[n])]})
    else:
        messages.append({"role": "user", "content": [image(pics[0])]})
    return messages


@pytest.mark.parametrize("steps", [0, 1, 2, 3, 5])
def test_mai_ui_goal_loop_prompt_is_the_published_agents_byte_for_byte(steps):
    from pixelpilot.agent.qwen.profile import MAI_UI

    goal = "打开设置并开启 Wi-Fi"  # its users' language: non-ASCII text goes through as it is
    outputs = [
        mai_reply(f'Step {i}: tap "Wi-Fi"', {"action": "click", "coordinate": [333 + i, 500 + 7 * i]})
        for i in range(steps)
    ]
    if steps > 1:
        outputs[1] = mai_reply("type it", {"action": "type", "text": "设置"})
    images = [shot(i) for i in range(steps)]
    history = [HistoryItem(images[i], outputs[i], f"step {i}") for i in range(steps)]
    ours = loop_prompt(get_space("mobile_use"), goal, history, shot(99), MAI_UI)
    assert ours.messages == mai_published_messages(goal, outputs, images, shot(99))
    assert render_text(ours).startswith("<|im_start|>system\nYou are a GUI agent.")


def test_mai_ui_history_rounds_points_as_its_agent_does():
    from pixelpilot.agent.qwen.derivatives import mai_ui_history_reply

    for x in range(0, 1000, 7):  # through 0–1 and back: int() of a float, as published (not always x)
        raw = mai_reply("t", {"action": "click", "coordinate": [x, 998 - x]})
        assert mai_ui_history_reply(raw) == mai_published_history(raw)
    box = mai_reply("t", {"action": "long_press", "coordinate": [100, 200, 300, 400]})
    assert '"coordinate":[200,300]' in mai_ui_history_reply(box)
    assert mai_ui_history_reply("no tags at all") is None


def test_mai_ui_actions_are_what_its_executor_does():
    from pixelpilot.agent.qwen.profile import MAI_UI

    size = (1080, 1920)

    def act(arguments: dict) -> A.Action:
        parsed = parse_reply(mai_reply("t", arguments))
        return reply_to_action(parsed, get_space("mobile_use"), size, divisor=999, profile=MAI_UI)[0]

    assert act({"action": "click", "coordinate": [499, 499]}) == A.Click(at=(539, 959))
    assert act({"action": "click", "coordinate": [0, 0, 998, 998]}) == A.Click(
        at=(539, 959)
    )  # a box: its centre
    assert act({"action": "swipe", "direction": "up"}) == A.Swipe(start=(540, 960), end=(540, 460))
    assert (
        act({"action": "swipe", "direction": "left", "coordinate": [100, 100]}).end[0] == 0
    )  # kept on screen
    assert act({"action": "open", "text": "com.android.settings"}) == A.OpenApp(app="com.android.settings")
    assert act({"action": "AWAKE", "text": "Settings"}) == A.OpenApp(app="Settings")
    assert act({"action": "system_button", "button": "back"}) == A.SystemButton(button="Back")
    assert act({"action": "terminate", "status": "fail"}) == A.Terminate(status="failure")
    assert act({"action": "INFO", "text": "Which account?"}) == A.Terminate(status="failure")
    assert act({"action": "wait"}) == A.Wait(seconds=2.0)
    drag = act({"action": "drag", "start_coordinate": [0, 0], "end_coordinate": [998, 998]})
    assert isinstance(drag, A.Swipe) and drag.start == (0, 0) and drag.end == (1079, 1918)
    with pytest.raises(Exception, match="swipe direction is up, down, left or right"):
        act({"action": "swipe", "direction": "sideways"})
    with pytest.raises(Exception, match="unknown action 'scroll'; MAI-UI's are"):
        act({"action": "scroll"})
