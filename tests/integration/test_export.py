"""``pixelpilot export``: a run the model drove, written as a task file of scripted steps that passes
again with no model at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pixelpilot.tasks import RunOptions, run_task
from pixelpilot.tasks.export import export_run
from pixelpilot.tasks.runner import make_driver
from tests.support.oracle import TreeOracle

from ..conftest import EXAMPLES, ROOT, run_dirs

pytestmark = pytest.mark.browser


def pixelpilot(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELPILOT_MODEL")}
    return subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "200"},
    )


def oracle_run(task: Path, oracle: TreeOracle, output: Path):
    def factory(spec, opts):
        oracle.driver = make_driver(spec, opts, task.parent, launch=False)
        return oracle.driver

    return run_task(
        task, RunOptions(output=output), model_factory=lambda *_: oracle.model(), driver_factory=factory
    )


def test_a_goal_run_on_the_demo_exports_to_a_script_that_passes_without_a_model(chromium, tmp_path):
    task = tmp_path / "tasks" / "sign-in.yaml"
    task.parent.mkdir()
    demo = os.path.relpath(EXAMPLES / "demo_app" / "index.html", task.parent)
    task.write_text(f"""name: sign in by the model
model: qwen3-vl-2b
steps:
  - open: {demo}
  - goal: {{goal: "Sign in as alice (password wonderland) and say who is welcomed", max_steps: 10}}
  - check: The page welcomes alice
""")
    oracle = TreeOracle(
        [
            ("click", {"role": "textbox", "name": "Username"}),
            ("type", "alice"),
            ("click", {"role": "textbox", "name": "Password"}),
            ("type", "wonderland"),
            ("wait", 0.5),
            ("click", "Sign in"),
            ("answer", "Welcome, alice"),
            ("reply", '{"result": true, "reason": "the heading says \\"Welcome, alice\\""}'),
        ]
    )
    res = oracle_run(task, oracle, tmp_path / "runs")
    assert res.status == "passed", res.error
    steps = [json.loads(line) for line in (res.run_dir / "steps.jsonl").read_text().splitlines()]
    clicks = [s for s in steps if s["kind"] == "goal" and s["action"]["action"] == "click"]
    assert [c["elements"][0]["target"] for c in clicks] == [
        "Username",
        "Password",
        "Sign in",
    ], "each model click records the element it landed on and a target that finds it alone"

    out = tmp_path / "exported" / "sign-in.yaml"
    cli = pixelpilot("export", str(res.run_dir), "-o", str(out))
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "no model needed" in cli.stdout
    text = out.read_text()
    exported = yaml.safe_load(text)
    assert "model" not in exported and exported["name"] == "sign in by the model (exported)"
    assert exported["steps"] == [
        {"open": str((EXAMPLES / "demo_app" / "index.html").resolve())},
        {"click": "Username"},
        {"type": "alice"},
        {"click": "Password"},
        {"type": "wonderland"},
        {"wait_for": "Sign in"},
        {"click": "Sign in"},
        {"see": "Welcome, alice"},
    ]
    assert "# goal: Sign in as alice" in text and "# the model waited 0.5 s here" in text

    # the script runs with no model anywhere (none in the file, none given): it passes
    again = pixelpilot("run", str(out), "--output", str(tmp_path / "again"))
    assert again.returncode == 0, again.stdout + again.stderr
    (run,) = run_dirs(tmp_path / "again")
    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "passed" and meta["model_calls"] == 0 and meta["model"] is None


def test_an_act_step_of_the_tiny_model_exports_to_the_click_it_made(chromium, tiny_scripted_dir, tmp_path):
    """The real processor → generate → parse path: the tiny Qwen3-VL's weights click Sign in."""
    task = tmp_path / "act.yaml"
    task.write_text(f"""name: the tiny model signs in
model: {{local: "{tiny_scripted_dir}"}}
steps:
  - open: {(EXAMPLES / "demo_app" / "index.html").as_uri()}
  - type: {{text: alice, into: Username}}
  - type: {{text: wonderland, into: Password}}
  - act: Sign in
  - see: Welcome, alice
""")
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    done = export_run(res.run_dir, tmp_path / "script.yaml")
    steps = yaml.safe_load(done.text)["steps"]
    assert steps[1:] == [
        {"type": {"text": "alice", "into": "Username"}},
        {"type": {"text": "wonderland", "into": "Password"}},
        {"click": "Sign in"},
        {"see": "Welcome, alice"},
    ]
    assert not done.left and done.scripted == 5
    rerun = run_task(tmp_path / "script.yaml", RunOptions(output=tmp_path / "again"))
    assert rerun.status == "passed", rerun.error
    assert json.loads((rerun.run_dir / "run.json").read_text())["model_calls"] == 0
