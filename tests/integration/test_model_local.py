"""The real processor → generate → parse path on a tiny Qwen3-VL, and the goal loop in real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent import Agent, read_run
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.models.local import LocalModel
from pixelpilot.agent.qwen import QwenProfile, act_prompt, pixels_to_grid, render_text
from pixelpilot.tools import COMPUTER_USE

from ..conftest import SIGN_IN_GRID

pytestmark = pytest.mark.browser
REFERENCE = Path(__file__).parent.parent / "unit" / "cookbook_computer_use_prompt.txt"


def test_processor_renders_the_cookbook_prompt(tiny_scripted_dir):
    model = LocalModel(str(tiny_scripted_dir))
    prompt = act_prompt(COMPUTER_USE, "open the first issue", Image.new("RGB", (1280, 800)))
    text = model.processor.apply_chat_template(
        prompt.messages, tools=prompt.tools, tokenize=False, add_generation_prompt=True
    )
    assert text == REFERENCE.read_text() == render_text(prompt)


def test_goal_loop_with_scripted_replies_logs_in(browser, demo_url, tmp_path):
    browser.goto(demo_url)
    tree = {n.name: n.box.center for n in browser.observe().tree if n.interactive}

    def click(name):
        return (
            "Action: click "
            + name
            + "\n<tool_call>\n"
            + json.dumps(
                {
                    "name": "computer_use",
                    "arguments": {
                        "action": "left_click",
                        "coordinate": list(pixels_to_grid(tree[name], (1280, 800))),
                    },
                }
            )
            + "\n</tool_call>"
        )

    def typed(text):
        return (
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "'
            + text
            + '"}}\n</tool_call>'
        )

    model = ScriptedModel(
        [
            click("Username"),
            typed("alice"),
            click("Password"),
            typed("wonderland"),
            click("Sign in"),
            '<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "success"}}\n</tool_call>',
        ]
    )
    with Agent(browser, model=model, output=tmp_path, task="goal") as agent:
        result = agent.run("Log in as alice with password wonderland", max_steps=10)
    assert result.status == "passed" and len(result.steps) == 6
    assert browser.page.text_content("#welcome") == "Welcome, alice"
    html = (agent.recorder.path / "report.html").read_text()
    assert html.count('class="marker"') == 3 and "Log in as alice" in html


def test_local_backend_scripted_tiny_model_clicks_the_right_element(
    browser, demo_url, tiny_scripted_dir, tmp_path
):
    browser.goto(demo_url)
    model = LocalModel(str(tiny_scripted_dir))
    with Agent(browser, model=model, output=tmp_path, task="tiny") as agent:
        rec = agent.act("Click the Sign in button")
        # the real path: processor → generate → decode → parse → grid → pixels → a real click in Chromium
        assert rec.point == (337, 334) and rec.locator == "model"
        assert browser.page.text_content("#login-error") == "Wrong username or password"
        assert rec.model["grid_point"] == list(SIGN_IN_GRID) and rec.model["calls"][0]["tokens_out"] == 5
        # as a goal: the same click on an unchanged screen a third time trips the loop guard
        result = agent.run("Sign in", max_steps=6)
    assert result.status == "failed" and "loop guard" in result.reason
    steps = read_run(agent.recorder.path).steps
    assert all(s.model["calls"][0]["raw"].startswith("Action: click the Sign in button.") for s in steps)


def test_tiny_random_model_runs_reasks_and_ends_with_an_output_error(
    browser, demo_url, tiny_random_dir, tmp_path
):
    browser.goto(demo_url)
    model = LocalModel(str(tiny_random_dir), profile=QwenProfile(max_new_tokens=6))
    with Agent(browser, model=model, output=tmp_path, task="random") as agent:
        result = agent.run("Log in", max_steps=3)
    assert result.status == "error" and "could not be used" in result.reason
    step = read_run(agent.recorder.path).steps[0]
    assert step.outcome == "failed" and step.model["reasked"]
    assert len(step.model["calls"]) == 2 and all(c["tokens_out"] == 6 for c in step.model["calls"])
    assert repr(step.model["calls"][1]["raw"]) in step.error  # the raw reply, shown exactly


def test_no_cuda_refuses_a_real_size_model_and_a_missing_model_says_where(tmp_path):
    from pixelpilot.agent.errors import ModelError

    with pytest.raises(ModelError, match="no CUDA device, and qwen3-vl-2b is a real-size model"):
        LocalModel("qwen3-vl-2b")
    with pytest.raises(ModelError, match=r"cannot load the model '.*nope'.*pass its directory"):
        LocalModel(str(tmp_path / "nope"), allow_cpu=True)


def test_image_budget_shrinks_what_the_model_sees_but_points_map_to_the_screenshot(tiny_scripted_dir):
    from pixelpilot.agent.qwen import parse_reply, reply_to_action

    model = LocalModel(str(tiny_scripted_dir))  # default budget: longest_edge 1280·32·32 pixels
    big = Image.new("RGB", (2560, 1440), "white")
    reply = model.generate(act_prompt(COMPUTER_USE, "click Sign in", big))
    assert reply.image_sizes == [(1504, 832)]  # 94×52 patches of 16 px: 1222 image tokens instead of 3600
    action, _ = reply_to_action(parse_reply(reply.text), COMPUTER_USE, big.size, divisor=1000)
    assert action.point == (673, 602)  # grid (263, 418) on the full 2560×1440 screenshot
    wide = LocalModel(
        str(tiny_scripted_dir),
        profile=QwenProfile(image_size={"shortest_edge": 65536, "longest_edge": 16777216}),
    )
    assert wide.generate(act_prompt(COMPUTER_USE, "click", big)).image_sizes == [(2560, 1440)]
