"""The Agent's scripted steps, the run log and the report, on the in-memory driver."""

import json

import pytest

from pixelpilot.agent import Agent, AgentSettings, CheckFailed, LocateError, StepFailed, read_run
from pixelpilot.agent.locate import Locator
from pixelpilot.drivers import FakeDriver, FakeWidget
from pixelpilot.tools import actions as A


def app() -> FakeDriver:
    def login(d: FakeDriver) -> None:
        d.add([FakeWidget(f"Welcome, {d.widget('Username').value}", (20, 200, 300, 30), role="text")])

    return FakeDriver(
        [
            FakeWidget("Username", (120, 20, 200, 30), role="textbox"),
            FakeWidget("Password", (120, 60, 200, 30), role="textbox", placeholder="secret"),
            FakeWidget("Sign in", (20, 100, 100, 30), on_click=login),
            FakeWidget("Item", (20, 300, 80, 20)),
            FakeWidget("Item", (20, 330, 80, 20)),
            FakeWidget("Remember me", (20, 140, 150, 20), role="checkbox"),
        ]
    )


def agent_for(d: FakeDriver, **kw) -> Agent:
    return Agent(
        d, locator=Locator(use_ocr=False), settings=AgentSettings(wait_timeout=0.5, poll_interval=0.01), **kw
    )


def test_click_type_see_on_the_fake(tmp_path):
    d = app()
    with agent_for(d, output=tmp_path, task="login") as agent:
        agent.type("alice", into="Username")
        agent.type("pw", into="secret")  # by placeholder
        agent.click("Sign in")
        agent.see("Welcome, alice")
        agent.click("Remember me")
    assert d.widget("Username").value == "alice"
    assert d.widget("Password").value == "pw"
    assert d.widget("Remember me").checked
    assert [s.kind for s in agent.steps] == ["type", "type", "click", "see", "click"]
    click = agent.steps[2]
    assert click.locator == "ui-tree" and click.point == (70, 115) and click.effect == "changed"

    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "passed" and run.meta["task"] == "login"
    assert [s.kind for s in run.steps] == ["type", "type", "click", "see", "click"]
    assert all((agent.recorder.path / s.frame).is_file() for s in run.steps)
    html = (agent.recorder.path / "report.html").read_text()
    assert html.count('class="marker"') == 4  # four steps acted on a point
    assert "Welcome, alice" in html


def test_ambiguous_target_lists_candidates_and_nth_picks():
    d = app()
    agent = agent_for(d)
    with pytest.raises(LocateError) as info:
        agent.click("Item")
    assert "ambiguous: 2 elements match" in str(info.value)
    assert len(info.value.candidates) == 2 and 'button "Item" at (20,300' in info.value.candidates[0]
    assert agent.steps[-1].outcome == "failed" and len(agent.steps[-1].candidates) == 2
    agent.click("Item", nth=2)
    assert d.widgets[4].clicks == 1 and d.widgets[3].clicks == 0


def test_not_found_names_similar_texts():
    agent = agent_for(app())
    with pytest.raises(LocateError) as info:
        agent.click("Sign on")
    assert "no element with the text 'Sign on'" in str(info.value)
    assert "'Sign in'" in info.value.candidates


def test_see_and_wait_for_fail_with_reasons():
    agent = agent_for(app())
    with pytest.raises(CheckFailed, match="'Goodbye' is not visible"):
        agent.see("Goodbye")
    with pytest.raises(StepFailed, match="'Goodbye' did not appear within 0.5 s"):
        agent.wait_for("Goodbye")


def test_wait_for_sees_text_that_appears_later():
    d = app()
    polls = []

    def sleep(_s: float) -> None:
        polls.append(1)
        if len(polls) == 3:
            d.add([FakeWidget("Done!", (0, 0, 50, 20), role="text")])

    agent = Agent(
        d,
        locator=Locator(use_ocr=False),
        sleep=sleep,
        settings=AgentSettings(wait_timeout=5, poll_interval=0),
    )
    rec = agent.wait_for("Done!")
    assert rec.outcome == "passed" and rec.result["polls"] == 3


def test_click_without_effect_is_retried_once_and_recorded():
    d = FakeDriver([FakeWidget("Dead", (0, 0, 50, 20), role="text")])
    rec = agent_for(d).click("Dead")
    assert rec.retried is True and rec.effect == "none"
    assert sum(isinstance(a, A.Click) for a in d.performed) == 2


def test_typing_is_verified():
    d = app()

    def mangle(drv: FakeDriver) -> None:
        drv.widget("Username").value = "ALICE"

    # a field that rewrites what is typed: the step fails and says what the field holds
    d.widget("Username").on_click = None
    agent = agent_for(d)
    agent.type("x", into="Username")
    d.widget("Username").value = ""
    orig = d.perform

    def perform(action):
        orig(action)
        if isinstance(action, A.Type):
            mangle(d)

    d.perform = perform  # type: ignore[method-assign]
    with pytest.raises(StepFailed, match="holds 'ALICE' instead of 'alice'"):
        agent.type("alice", into="Username")


def test_driver_error_mid_run_keeps_finished_steps(tmp_path):
    d = app()
    agent = agent_for(d, output=tmp_path, task="crash")
    from pixelpilot.agent.errors import DriverError

    with pytest.raises(DriverError), agent:
        agent.type("alice", into="Username")
        d.fail_next = "the display went away"
        agent.click("Sign in")
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "error"
    assert "the display went away" in run.meta["error"]
    assert [(s.kind, s.outcome) for s in run.steps] == [("type", "passed"), ("click", "error")]


def test_interrupt_leaves_a_readable_run(tmp_path):
    d = app()

    def on_step(rec):
        if rec.index == 1:
            raise KeyboardInterrupt

    agent = agent_for(d, output=tmp_path, task="ctrl-c", on_step=on_step)
    with pytest.raises(KeyboardInterrupt), agent:
        agent.type("alice", into="Username")
        agent.click("Sign in")
        agent.click("Item", nth=1)
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "interrupted"
    assert len(run.steps) == 2
    assert (agent.recorder.path / "report.html").is_file()


def test_torn_steps_file_is_still_readable(tmp_path):
    d = app()
    agent = agent_for(d, output=tmp_path, task="torn")
    agent.type("alice", into="Username")
    agent.click("Sign in")
    path = agent.recorder.path
    # simulate a process killed while writing: run.json still says running, last line cut short
    with (path / "steps.jsonl").open("a") as f:
        f.write('{"index": 2, "kind": "cli')
    run = read_run(path)
    assert len(run.steps) == 2
    assert any("line 3 is incomplete" in p for p in run.problems)
    assert any("did not finish" in p for p in run.problems)
    from pixelpilot.agent.report import write_report

    html = write_report(path).read_text()
    assert "This run is incomplete" in html and "running" in html


def test_steps_are_flushed_as_they_end(tmp_path):
    d = app()
    agent = agent_for(d, output=tmp_path, task="flush")
    agent.type("alice", into="Username")
    lines = (agent.recorder.path / "steps.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["kind"] == "type"
    meta = json.loads((agent.recorder.path / "run.json").read_text())
    assert meta["status"] == "running"


def test_identical_frames_are_stored_once(tmp_path):
    d = FakeDriver([FakeWidget("Static", (0, 0, 60, 20), role="text")])
    agent = agent_for(d, output=tmp_path)
    for _ in range(3):
        agent.see("Static")
    assert len(list((agent.recorder.path / "frames").iterdir())) == 1


def test_an_element_off_the_screen_is_waited_for_and_then_named_in_a_clear_error():
    """A dialog just mapped can report its fields at negative positions for a moment: the step waits
    on fresh frames until the field is on the screen; one that never comes on it fails with a
    LocateError that says where it was, not a click outside the screen."""
    d = FakeDriver([FakeWidget("File name", (100, -40, 200, 30), role="textbox")])
    frames = []
    observe = d.observe

    def placing(**kw):
        frames.append(1)
        if len(frames) == 3:  # the window manager places the dialog
            d.widget("File name").box = (100, 40, 200, 30)
        return observe(**kw)

    d.observe = placing
    with agent_for(d) as agent:
        agent.type("notes.txt", into="File name")
    assert d.widget("File name").value == "notes.txt" and len(frames) >= 3

    stuck = FakeDriver([FakeWidget("File name", (100, -40, 200, 30), role="textbox")])
    agent = Agent(stuck, locator=Locator(use_ocr=False), settings=AgentSettings(settle_timeout=0.3))
    with pytest.raises(LocateError, match=r"off the screen at \(200, -25\)"):
        agent.type("notes.txt", into="File name")
    assert stuck.widget("File name").value == "" and not stuck.performed
