"""A record never lies: every way a step or a run can end is written as it happened.

Each test here failed on the code before the step pipeline (agent/step.py) decided outcomes in one
place: crashes were saved as passed runs, a false ``check`` was written as passed, a crashed run was
offered as the cache, and typing with nothing focused passed.
"""

import json
from pathlib import Path

import pytest

from pixelpilot.agent import Agent, AgentSettings, read_run
from pixelpilot.agent.cache import last_passing_run
from pixelpilot.agent.errors import CheckFailed, StepFailed
from pixelpilot.agent.locate import Locator
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.runlog import RunWriter
from pixelpilot.drivers import FakeDriver, FakeWidget
from pixelpilot.tasks.runner import RunOptions, run_task
from pixelpilot.tools import actions as A


def app() -> FakeDriver:
    return FakeDriver(
        [
            FakeWidget("Username", (120, 20, 200, 30), role="textbox"),
            FakeWidget(
                "Sign in",
                (20, 100, 100, 30),
                on_click=lambda d: d.add([FakeWidget("Hi", (0, 300, 50, 20), role="text")]),
            ),
        ]
    )


def task_file(tmp_path: Path, steps: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nsteps:\n{steps}")
    return path


def run(path: Path, out: Path, driver: FakeDriver, model=None):
    return run_task(
        path,
        RunOptions(output=out),
        driver_factory=lambda task, opts: driver,
        model_factory=(lambda spec, name: model) if model is not None else None,
    )


def steps_on_disk(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]


def test_a_crash_inside_a_step_is_an_error_step_and_an_error_run(tmp_path):
    d = app()
    real = d.perform

    def perform(action):
        if isinstance(action, A.Click) and d.focused is not None:  # the click on Sign in
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        real(action)

    d.perform = perform  # type: ignore[method-assign]
    path = task_file(tmp_path, "  - type: {text: alice, into: Username}\n  - click: Sign in\n  - see: Hi\n")
    res = run(path, tmp_path / "runs", d)
    assert res.status == "error" and res.exit_code == 1
    meta = json.loads((res.run_dir / "run.json").read_text())
    assert meta["status"] == "error"
    assert meta["error"] == "ValueError: Exceeds the limit (4300 digits) for integer string conversion"
    disk = steps_on_disk(res.run_dir)
    assert [(s["kind"], s["outcome"]) for s in disk] == [("type", "passed"), ("click", "error")]
    assert disk[1]["error_type"] == "ValueError" and "4300 digits" in disk[1]["error"]
    assert "ValueError" in (res.run_dir / "report.html").read_text()
    assert last_passing_run(tmp_path / "runs", "t") is None


def test_a_false_check_is_failed_on_disk_before_anything_else_reads_it(tmp_path):
    model = ScriptedModel(['{"result": false, "reason": "no welcome text"}'])
    path = task_file(tmp_path, "  - check: A welcome text is shown\n")
    res = run(path, tmp_path / "runs", app(), model)
    assert res.status == "failed"
    (step,) = steps_on_disk(res.run_dir)
    assert step["outcome"] == "failed" and step["error_type"] == "CheckFailed"
    assert "no welcome text" in step["error"]
    assert json.loads((res.run_dir / "run.json").read_text())["status"] == "failed"


def test_check_in_python_returns_a_verdict_unless_strict():
    agent = Agent(
        app(), model=ScriptedModel(['{"result": false, "reason": "r"}'] * 2), locator=Locator(use_ocr=False)
    )
    assert not agent.check("x") and agent.steps[-1].outcome == "passed"
    with pytest.raises(CheckFailed, match="the model judged it false: r"):
        agent.check("x", strict=True)
    assert agent.steps[-1].outcome == "failed"


def test_an_unparsable_model_reply_keeps_the_raw_reply_in_the_failed_step(tmp_path):
    model = ScriptedModel(["I would click somewhere", "still no call"])
    path = task_file(tmp_path, "  - act: Sign in\n")
    res = run(path, tmp_path / "runs", app(), model)
    assert res.status == "failed"
    (step,) = steps_on_disk(res.run_dir)
    assert step["outcome"] == "failed" and step["error_type"] == "ModelOutputError"
    assert step["model"]["raw"] == "still no call"


def test_a_run_whose_record_says_passed_but_whose_steps_do_not_is_no_cache(tmp_path):
    out = tmp_path / "runs"
    w = RunWriter(out, "t", meta={"task": "t"})
    agent = Agent(app(), recorder=w, locator=Locator(use_ocr=False))
    agent.type("alice", into="Username")
    w.finish("passed")
    assert last_passing_run(out, "t") == w.path
    # what the old runner wrote after a crash: run.json passed, the crashing step never written
    meta = json.loads((w.path / "run.json").read_text())
    meta["steps"] = 2
    (w.path / "run.json").write_text(json.dumps(meta))
    assert last_passing_run(out, "t") is None
    # and a step written as failed under a passed run.json
    meta["steps"] = 1
    (w.path / "run.json").write_text(json.dumps(meta))
    line = json.loads((w.path / "steps.jsonl").read_text())
    line["outcome"] = "failed"
    (w.path / "steps.jsonl").write_text(json.dumps(line) + "\n")
    assert last_passing_run(out, "t") is None


def test_the_run_writer_never_records_passed_over_a_step_that_did_not_pass(tmp_path):
    w = RunWriter(tmp_path, "t")
    agent = Agent(app(), recorder=w, locator=Locator(use_ocr=False))
    with pytest.raises(Exception):  # noqa: B017 - whatever it is, the record must say so
        agent.click("Nowhere")
    w.finish("passed")
    meta = read_run(w.path).meta
    assert meta["status"] == "failed" and meta["error"] == "a step did not pass"


def test_typing_with_nothing_focused_fails_and_says_so(tmp_path):
    d = app()
    agent = Agent(d, output=tmp_path, locator=Locator(use_ocr=False))
    with pytest.raises(StepFailed, match="nothing had the keyboard focus"):
        agent.type("hello")
    agent.close()
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "failed" and run.steps[0].outcome == "failed"
    # after a click into the field the same typing works
    agent2 = Agent(d, locator=Locator(use_ocr=False))
    agent2.click("Username")
    assert agent2.type("hello").outcome == "passed" and d.widget("Username").value == "hello"


def test_an_agent_used_as_a_context_manager_records_foreign_exceptions(tmp_path):
    agent = Agent(app(), output=tmp_path, locator=Locator(use_ocr=False), settings=AgentSettings())
    with pytest.raises(ZeroDivisionError), agent:
        agent.type("alice", into="Username")
        1 / 0  # noqa: B018 - user code between steps
    meta = read_run(agent.recorder.path).meta
    assert meta["status"] == "error" and meta["error"] == "ZeroDivisionError: division by zero"


def test_a_models_typing_into_nothing_ends_the_goal_run_saying_so():
    typing = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "type", "text": "alice"}}\n</tool_call>'
    agent = Agent(app(), model=ScriptedModel([typing]), locator=Locator(use_ocr=False))
    res = agent.run("Log in", max_steps=3)
    assert res.status == "failed" and "nothing had the keyboard focus" in res.reason
    assert agent.steps[-1].outcome == "failed"


def test_the_last_passing_run_is_a_lookup_and_a_stale_note_is_not_trusted(tmp_path, monkeypatch):
    out = tmp_path / "runs"
    for task in ("t", "u"):
        w = RunWriter(out, task, meta={"task": task})
        Agent(app(), recorder=w, locator=Locator(use_ocr=False)).type("alice", into="Username")
        w.finish("passed")
    (out / "junk").mkdir()  # an unreadable old run would cost a scan
    scans: list[str] = []
    real_glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: scans.append(pattern) or real_glob(self, pattern))
    assert last_passing_run(out, "t") == next(p for p in out.iterdir() if p.name.endswith("-t"))
    assert scans == []  # the note of passing runs answered: no run.json was scanned
    run = last_passing_run(out, "u")
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**meta, "status": "failed"}))  # edited since: not trusted
    assert last_passing_run(out, "u") is None and scans == ["*/run.json"]
