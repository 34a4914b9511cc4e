"""The goal loop and model-decided steps on the in-memory driver with scripted replies."""

import json

import pytest

from pixelpilot.agent import Agent, AgentSettings, ModelOutputError, read_run
from pixelpilot.agent.locate import Locator
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.qwen import pixels_to_grid
from pixelpilot.drivers import FakeDriver, FakeWidget


def call(args: dict, action: str = "do it") -> str:
    return (
        f"Action: {action}\n<tool_call>\n"
        + json.dumps({"name": "computer_use", "arguments": args})
        + "\n</tool_call>"
    )


def click_on(d: FakeDriver, name: str, action: str = "click it") -> str:
    x, y, w, h = d.widget(name).box
    return call(
        {"action": "left_click", "coordinate": list(pixels_to_grid((x + w / 2, y + h / 2), d.size))}, action
    )


def app() -> FakeDriver:
    def sign_in(d):
        d.add([FakeWidget(f"Welcome, {d.widget('Username').value}", (20, 200, 300, 30), role="text")])

    return FakeDriver(
        [
            FakeWidget("Username", (120, 20, 200, 30), role="textbox"),
            FakeWidget("Sign in", (20, 100, 100, 30), on_click=sign_in),
        ]
    )


def agent_with(d, replies, **kw) -> tuple[Agent, ScriptedModel]:
    model = ScriptedModel(replies)
    return Agent(d, model=model, locator=Locator(use_ocr=False), **kw), model


def test_goal_loop_completes_and_logs_every_call(tmp_path):
    d = app()
    replies = [
        click_on(d, "Username", "Click the username box."),
        call({"action": "type", "text": "alice"}, "Type alice."),
        click_on(d, "Sign in", "Sign in."),
        call({"action": "terminate", "status": "success"}, "Done."),
    ]
    agent, model = agent_with(d, replies, output=tmp_path, task="login")
    with agent:
        result = agent.run("Log in as alice", max_steps=10)
    assert (result.status, result.model_calls, len(result.steps)) == ("passed", 4, 4)
    assert d.widget("Username").value == "alice" and d.widget("Sign in").clicks == 1
    # the history grows: the 3rd prompt carries the 2 earlier screenshots and the current one
    assert [len(p.images) for p in model.prompts] == [1, 2, 3, 4]
    steps = read_run(agent.recorder.path).steps
    first = steps[0].model
    assert first["backend"] == "scripted" and first["action_text"] == "Click the username box."
    call0 = first["calls"][0]
    assert (
        call0["raw"] == replies[0] and call0["images"] == [[640, 400]] and len(call0["prompt_digest"]) == 16
    )
    assert {"tokens_in", "tokens_out", "latency_ms"} <= set(call0)
    assert first["grid_point"] == list(pixels_to_grid((220, 35), (640, 400))) and first["pixel_point"] == [
        220,
        35,
    ]
    assert steps[0].point == (220, 35)


def test_reask_once_on_garbage_then_succeed():
    d = app()
    agent, model = agent_with(
        d, ["no idea", click_on(d, "Sign in"), call({"action": "terminate", "status": "success"})]
    )
    result = agent.run("Sign in", max_steps=5)
    assert result.status == "passed" and model.calls == 3
    rec = result.steps[0]
    assert rec.model["reasked"] == "the reply has no tool call"
    assert len(rec.model["calls"]) == 2 and rec.model["calls"][0]["raw"] == "no idea"
    assert "could not be used" in model.prompts[1].messages[-1]["content"][0]["text"]


def test_garbage_twice_ends_the_run_with_the_raw_reply():
    agent, _ = agent_with(app(), ["first garbage", "second garbage"])
    result = agent.run("Sign in", max_steps=5)
    assert result.status == "error" and "no tool call" in result.reason
    assert result.steps[-1].outcome == "failed" and "second garbage" in result.steps[-1].error


def test_terminate_failure_answer_and_budgets():
    agent, _ = agent_with(app(), [call({"action": "terminate", "status": "failure"})])
    assert agent.run("Impossible").status == "failed"
    agent, _ = agent_with(app(), [call({"action": "answer", "text": "42"})])
    res = agent.run("What is the answer?")
    assert (res.status, res.answer) == ("passed", "42")
    agent, _ = agent_with(app(), [call({"action": "wait", "time": i / 1000}) for i in range(3)])
    res = agent.run("Wait around", max_steps=3)
    assert res.status == "budget" and "3 steps" in res.reason
    agent, model = agent_with(app(), [call({"action": "wait", "time": i / 1000}) for i in range(5)])
    res = agent.run("Wait around", max_model_calls=2)
    assert res.status == "budget" and model.calls == 2


def test_loop_guard_stops_the_same_action_on_an_unchanged_screen():
    d = FakeDriver([FakeWidget("Dead", (0, 0, 100, 40), role="text")])
    agent, model = agent_with(d, [click_on(d, "Dead")] * 5, settings=AgentSettings(retry_no_effect=False))
    res = agent.run("Click it", max_steps=5)
    assert res.status == "failed" and "loop guard" in res.reason and "three times" in res.reason
    assert model.calls == 3 and d.widget("Dead").clicks == 2  # the third repeat is refused, not performed


def test_act_one_step():
    d = app()
    agent, _ = agent_with(d, [click_on(d, "Sign in")])
    rec = agent.act("sign in")
    assert rec.kind == "act" and d.widget("Sign in").clicks == 1
    assert rec.model["calls"][0]["kind"] == "act"


def test_click_falls_back_to_grounding_when_text_locators_cannot_answer():
    d = app()
    agent, model = agent_with(
        d, ['```json\n[{"point_2d": [109, 287], "label": "the blue sign in button"}]\n```']
    )
    rec = agent.click("the blue sign in button")
    assert rec.locator == "model" and d.widget("Sign in").clicks == 1
    assert rec.model["grounding"]["point_2d"] == (109, 287)
    assert (
        "Locate the blue sign in button in this image" in model.prompts[0].messages[0]["content"][1]["text"]
    )
    # the UI tree answers first when it can: no model call
    agent.click("Sign in")
    assert model.calls == 1
    # ambiguity is not sent to the model
    d.add([FakeWidget("Sign in", (300, 300, 80, 30))])
    with pytest.raises(Exception, match="ambiguous"):
        agent.click("Sign in")


def test_use_model_never_and_only():
    d = app()
    agent, model = agent_with(d, ['{"point_2d": [109, 287]}'], settings=AgentSettings(use_model="never"))
    with pytest.raises(Exception, match="no element with the text"):
        agent.click("the blue button")
    assert model.calls == 0
    agent, model = agent_with(d, ['{"point_2d": [109, 287]}'], settings=AgentSettings(use_model="only"))
    assert agent.click("Sign in").locator == "model" and model.calls == 1


def test_ask_and_check():
    agent, model = agent_with(
        app(), ["The total is $42.50", '{"result": false, "reason": "no confirmation is shown"}']
    )
    assert agent.ask("What is the order total?") == "The total is $42.50"
    verdict = agent.check("An order confirmation is shown")
    assert not verdict and verdict.reason == "no confirmation is shown"
    assert agent.steps[-1].result == {"result": False, "reason": "no confirmation is shown"}


def test_bad_grounding_reply_is_a_model_output_error():
    agent, _ = agent_with(app(), ["it is somewhere on the left"])
    with pytest.raises(ModelOutputError):
        agent.click("the blue button")


def test_model_steps_without_a_model_say_so():
    agent = Agent(app(), locator=Locator(use_ocr=False))
    with pytest.raises(Exception, match="needs a model"):
        agent.ask("what?")
