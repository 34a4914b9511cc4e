"""The verified cache: a re-run of a model-driven task makes zero model calls when the UI is unchanged,
and exactly the needed calls when one element moved."""

from __future__ import annotations

import json
import shutil

import pytest

from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.qwen import pixels_to_grid
from pixelpilot.drivers import BrowserDriver
from pixelpilot.tasks import RunOptions, run_task

from ..conftest import EXAMPLES

pytestmark = pytest.mark.browser


def click(point) -> str:
    grid = list(pixels_to_grid(point, (1280, 800)))
    return f'<tool_call>\n{{"name": "computer_use", "arguments": {{"action": "left_click", "coordinate": {json.dumps(grid)}}}}}\n</tool_call>'


def typed(text: str) -> str:
    return f'<tool_call>\n{{"name": "computer_use", "arguments": {{"action": "type", "text": "{text}"}}}}\n</tool_call>'


DONE = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "terminate", "status": "success"}}\n</tool_call>'


def positions(url: str) -> dict[str, tuple[int, int]]:
    with BrowserDriver.launch() as d:
        d.goto(url)
        return {n.name: n.box.center for n in d.observe().tree if n.interactive}


def login(p: dict[str, tuple[int, int]]) -> list[str]:
    """The model's replies for logging in as alice on the demo app (positions from ``positions``)."""
    return [
        click(p["Username"]),
        typed("alice"),
        click(p["Password"]),
        typed("wonderland"),
        click(p["Sign in"]),
        DONE,
    ]


def focus_moves_to_the_password(page) -> None:
    """Change the demo app so that focusing the user name field moves the focus on (nothing shows)."""
    page.write_text(
        page.read_text().replace(
            "</body>",
            '<script>document.getElementById("username").addEventListener("focus", () =>'
            ' document.getElementById("password").focus())</script></body>',
        )
    )


@pytest.fixture
def app(chromium, tmp_path):
    shutil.copytree(EXAMPLES / "demo_app", tmp_path / "demo_app")
    task = tmp_path / "login.yaml"
    task.write_text(
        "name: login\ncache: true\nmodel: scripted\nsteps:\n  - open: demo_app/index.html\n"
        "  - goal: Log in as alice with password wonderland\n  - see: Welcome, alice\n"
    )
    return tmp_path, task


def run(task, output, replies):
    model = ScriptedModel(replies)
    res = run_task(task, RunOptions(output=output), model_factory=lambda *_: model)
    return res, model


def test_rerun_uses_the_cache_and_falls_back_only_where_the_ui_changed(app):
    folder, task = app
    url = (folder / "demo_app" / "index.html").as_uri()
    p = positions(url)
    script = login(p)
    out = folder / "runs"

    cold, m1 = run(task, out, script)
    assert cold.status == "passed" and m1.calls == 6

    typed_into = [s.focus["name"] for s in cold.steps if s.kind == "goal" and s.focus]
    assert typed_into == ["Username", "Password"]  # the model's typing records the focused field

    warm, m2 = run(task, out, [])  # no replies at all: any model call would fail the run
    assert warm.status == "passed" and m2.calls == 0
    goal_steps = [s for s in warm.steps if s.kind == "goal"]
    assert len(goal_steps) == 6 and {s.locator for s in goal_steps} == {"cache"}
    meta = json.loads((warm.run_dir / "run.json").read_text())
    assert meta["cache_from"] == str(cold.run_dir) and meta["model_calls"] == 0
    report = (warm.run_dir / "report.html").read_text()
    assert "cache" in report
    # the typing steps checked the keyboard focus instead of taking a frame; the clicks took one each
    typing = [s for s in goal_steps if s.action["action"] == "type"]
    assert [s.focus["name"] for s in typing] == ["Username", "Password"]
    assert all(s.frame is None and "observe" not in s.timings and "verify" in s.timings for s in typing)
    assert all(s.frame for s in goal_steps if s.action["action"] != "type")
    assert report.count("no frame taken: typed from the cache") == 2

    page = folder / "demo_app" / "index.html"
    page.write_text(
        page.read_text().replace(
            '<button class="primary" id="signin">',
            '<button class="primary" id="signin" style="margin-left:300px">',
        )
    )
    moved = positions(url)["Sign in"]
    assert moved[0] > p["Sign in"][0] + 200
    third, m3 = run(task, out, [click(moved)])
    assert third.status == "passed" and m3.calls == 1  # only the click on the moved button asked the model
    sources = [s.locator for s in third.steps if s.kind == "goal"]
    assert sources == ["cache", "cache", "cache", "cache", "model", "cache"]


def test_scripted_targets_come_from_the_cache_after_checking_the_screen(chromium, tmp_path):
    shutil.copytree(EXAMPLES / "demo_app", tmp_path / "demo_app")
    task = tmp_path / "demo.yaml"
    task.write_text(
        (EXAMPLES / "demo.yaml").read_text().replace("driver: browser", "driver: browser\ncache: true")
    )
    first = run_task(task, RunOptions(output=tmp_path / "runs"))
    second = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert first.status == second.status == "passed"
    clicks = [s for s in second.steps if s.kind == "click"]
    assert clicks and all(s.locator == "cache" for s in clicks)
    assert all(s.locator == "ui-tree" for s in first.steps if s.kind == "click")


def test_cached_actions_do_not_wait_but_a_busy_page_is_waited_for_before_the_next_check(app):
    """An action from the cache does not wait for the page to settle; when the next frame does not
    match yet (the app shows "Signing in..." for ~300 ms before the inbox), the step waits for the
    page to settle, looks again, and still needs no model call. Its recorded frame is the settled one."""
    folder, task = app
    page = folder / "demo_app" / "index.html"
    html = page.read_text()
    head = 'if (u === "alice" && p === "wonderland") {'
    assert head in html and html.count('      show("inbox");\n') == 1
    busy = (
        ' let n = 0; const busy = setInterval(() => { $("login-error").textContent = "Signing in"'
        ' + ".".repeat(n % 4); if (++n < 30) return; clearInterval(busy);'
    )
    page.write_text(
        html.replace(head, head + busy, 1).replace('      show("inbox");\n', '      show("inbox"); }, 10);\n')
    )
    p = positions((folder / "demo_app" / "index.html").as_uri())
    script = [click(p["Username"]), typed("alice"), click(p["Password"]), typed("wonderland")]
    out = folder / "runs"
    cold, m1 = run(task, out, [*script, click(p["Sign in"]), DONE])
    assert cold.status == "passed" and m1.calls == 6, cold.error

    warm, m2 = run(task, out, [])
    assert warm.status == "passed" and m2.calls == 0, warm.error
    goal = [s for s in warm.steps if s.kind == "goal"]
    assert [s.effect for s in goal[:5]] == ["deferred"] * 5
    last = goal[-1]  # terminate: first saw "Signing in...", then waited for the inbox
    assert last.timings.get("settle", 0) > 0  # it waited (how long depends on how busy the machine is)
    assert last.frame == [s for s in cold.steps if s.kind == "goal"][-1].frame


def test_cached_typing_asks_the_model_when_the_keyboard_focus_is_on_another_field(chromium, tmp_path):
    """The click on the user name field still matches on screen, but the app now moves the focus
    to the password field: the cached typing must not go there. It asks the model, before anything
    was typed."""
    from pixelpilot.agent import Agent
    from pixelpilot.agent.cache import StepCache

    shutil.copytree(EXAMPLES / "demo_app", tmp_path / "demo_app")
    page = tmp_path / "demo_app" / "index.html"
    url = page.as_uri()
    p = positions(url)
    with BrowserDriver.launch() as d:
        d.goto(url)
        cold = Agent(
            d,
            model=ScriptedModel([click(p["Username"]), typed("alice"), DONE]),
            output=tmp_path / "runs",
            task="t",
        )
        assert cold.run("Type alice as the user name").ok
        cold.close()

        focus_moves_to_the_password(page)
        d.goto(url)
        fields_when_asked = []

        def model(prompt):
            fields_when_asked.append((d.page.input_value("#username"), d.page.input_value("#password")))
            return typed("alice") if len(fields_when_asked) == 1 else DONE

        scripted = ScriptedModel(model)
        warm = Agent(
            d, model=scripted, cache=StepCache(cold.recorder.path), output=tmp_path / "runs", task="t"
        )
        res = warm.run("Type alice as the user name")
        warm.close()
    assert res.ok, res.reason
    assert [s.locator for s in warm.steps[:2]] == ["cache", "model"]
    assert fields_when_asked[0] == ("", "")  # nothing was typed from the cache
    assert warm.steps[1].frame is not None  # the model got its screenshot
    assert warm.steps[1].focus["name"] == "Password"


def test_replaying_a_cached_run_checks_the_focus_of_its_typing_steps(app):
    """A cached run's typing steps have no frame to compare; replay checks the keyboard focus instead
    and stops there, with the field marked on the current frame."""
    from pixelpilot.agent import Agent
    from pixelpilot.agent.replay import replay_run

    folder, task = app
    p = positions((folder / "demo_app" / "index.html").as_uri())
    out = folder / "runs"
    script = login(p)
    assert run(task, out, script)[0].status == "passed"
    warm, _ = run(task, out, [])
    assert warm.status == "passed"
    page = folder / "demo_app" / "index.html"
    focus_moves_to_the_password(page)
    with BrowserDriver.launch() as d:
        agent = Agent(d, output=folder / "replays", task="replay")
        result = replay_run(warm.run_dir, agent)
        agent.close()
    assert result.status == "diverged", result.reason
    d = result.divergences[0]
    assert d.step == 2 and d.focus.startswith('textbox "Password"')
    assert 'the keyboard focus is on textbox "Password"' in result.reason
    assert d.picture.exists() and len(result.steps) == 2  # opened and clicked; nothing typed
