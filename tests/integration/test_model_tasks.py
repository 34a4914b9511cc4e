"""Model steps in task files and on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pixelpilot.agent.models import ScriptedModel
from pixelpilot.tasks import RunOptions, run_task

from ..conftest import EXAMPLES, ROOT, run_dirs

pytestmark = pytest.mark.browser
DEMO = (EXAMPLES / "demo_app" / "index.html").as_uri()


def cli(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_ask_check_goal_steps_in_a_task(chromium, tmp_path):
    task = tmp_path / "model.yaml"
    task.write_text(f"""
name: model steps
model: qwen3-vl-2b
steps:
  - open: {DEMO}
  - ask: {{question: "What is the page title?", save_as: title}}
  - check: The sign in form is shown
  - goal: {{goal: "Give up", max_steps: 3}}
""")
    replies = [
        "Sign in to Acme",
        '{"result": true, "reason": "the form is there"}',
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "answer", "text": "nothing to do"}}\n</tool_call>',
    ]
    seen = []

    def factory(spec, name):
        seen.append((spec, name))
        return ScriptedModel(replies, name="scripted-2b")

    res = run_task(task, RunOptions(output=tmp_path / "runs"), model_factory=factory)
    assert res.status == "passed", res.error
    assert seen == [("qwen3-vl-2b", None)]
    assert res.values == {"title": "Sign in to Acme", "answer": "nothing to do"}
    meta = json.loads((res.run_dir / "run.json").read_text())
    assert (
        meta["model"] == "scripted-2b"
        and meta["values"]["title"] == "Sign in to Acme"
        and meta["model_calls"] == 3
    )


def test_a_false_check_fails_the_task_with_the_reason(chromium, tmp_path):
    task = tmp_path / "check.yaml"
    task.write_text(
        f"steps:\n  - open: {DEMO}\n  - check: An order confirmation is shown\n  - see: never reached\n"
    )
    res = run_task(
        task,
        RunOptions(output=tmp_path / "runs"),
        model_factory=lambda *_: ScriptedModel(
            ['{"result": false, "reason": "only a sign in form is visible"}']
        ),
    )
    assert res.status == "failed"
    assert (
        "check failed: 'An order confirmation is shown': the model judged it false: only a sign in form is visible"
        in res.error
    )
    assert [s.kind for s in res.steps] == ["open", "check"] and res.steps[-1].outcome == "failed"


def test_model_steps_default_to_4b_and_a_cpu_machine_says_what_to_do(chromium, tmp_path):
    task = tmp_path / "goal.yaml"
    task.write_text(f"steps:\n  - open: {DEMO}\n  - goal: Log in\n")
    res = cli("run", str(task), "--output", str(tmp_path / "runs"))
    assert res.returncode == 3, res.stdout
    assert (
        "no CUDA device, and qwen3-vl-4b is a real-size model" in res.stdout
        and "--model openai:<url>" in res.stdout
    )
    assert "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "runs").exists()


def test_model_flag_with_a_local_tiny_model(chromium, tiny_scripted_dir, tmp_path):
    task = tmp_path / "act.yaml"
    task.write_text(
        f"steps:\n  - open: {DEMO}\n  - act: Click the Sign in button\n  - wait_for: Wrong username or password\n"
    )
    res = cli("run", str(task), "--model", str(tiny_scripted_dir), "--output", str(tmp_path / "runs"))
    assert res.returncode == 0, res.stdout + res.stderr
    run_dir = run_dirs(tmp_path / "runs")[0]
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    act = steps[1]
    assert act["kind"] == "act" and act["point"] == [337, 334]
    call = act["model"]["calls"][0]
    assert call["raw"].startswith("Action: click the Sign in button.") and call["tokens_out"] == 5
    assert call["images"] == [[1280, 800]] and call["images_to_model"] == [[1280, 800]]


def test_parse_reply_command(tmp_path):
    reply = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [183, 524]}}\n</tool_call>'
    res = cli("parse-reply", "--screen", "2560x1440", stdin=reply)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (
        out["grid_point"] == [183, 524]
        and out["pixel_point"] == [468, 755]
        and out["action"] == {"at": [468, 755], "action": "click"}
    )
    mobile = '<tool_call>\n{"name": "mobile_use", "arguments": {"action": "swipe", "coordinate": [500, 800], "coordinate2": [500, 200]}}\n</tool_call>'
    out = json.loads(
        cli("parse-reply", "--screen", "1080x2400", "--space", "mobile_use", stdin=mobile).stdout
    )
    assert out["action"]["action"] == "swipe" and out["pixel_point2"] == [541, 480]
    bad = cli("parse-reply", "--screen", "1280x800", stdin="I would click the button")
    assert (
        bad.returncode == 1
        and "no tool call" in bad.stderr
        and json.loads(bad.stdout)["raw"] == "I would click the button"
    )


def test_parse_reply_draws_the_point(tmp_path):
    from PIL import Image

    frame = tmp_path / "frame.png"
    Image.new("RGB", (1280, 800), "white").save(frame)
    reply = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [500, 500]}}\n</tool_call>'
    res = cli(
        "parse-reply",
        "--screen",
        "1280x800",
        "--image",
        str(frame),
        "--out",
        str(tmp_path / "m.png"),
        stdin=reply,
    )
    assert res.returncode == 0
    marked = Image.open(tmp_path / "m.png").convert("RGB")
    assert marked.getpixel((640, 400)) != (255, 255, 255)  # the crosshair sits on the point
    assert marked.getpixel((10, 10)) == (255, 255, 255)
