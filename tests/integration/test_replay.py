"""Replay without the model: unchanged app → zero model calls; a changed label → stops at that step
with a side-by-side picture; heal → one model call fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from pixelpilot.agent import Agent, read_run
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.replay import replay_run, similarity
from pixelpilot.drivers import BrowserDriver
from pixelpilot.tasks import RunOptions, run_task

from ..conftest import EXAMPLES, ROOT, run_dirs

pytestmark = pytest.mark.browser


@pytest.fixture
def recorded(chromium, tmp_path):
    """The demo task recorded against a copy of the demo app that the test may then change."""
    shutil.copytree(EXAMPLES / "demo_app", tmp_path / "demo_app")
    shutil.copy(EXAMPLES / "demo.yaml", tmp_path / "demo.yaml")
    res = run_task(tmp_path / "demo.yaml", RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed"
    return tmp_path, res.run_dir


def relabel(app_dir, old: str, new: str) -> None:
    page = app_dir / "demo_app" / "index.html"
    page.write_text(page.read_text().replace(f">{old}</button>", f">{new}</button>"))


def replay(run_dir, tmp_path, *, model=None, heal=False):
    with BrowserDriver.launch() as d:
        agent = Agent(d, model=model, output=tmp_path / "replays", task="replay")
        result = replay_run(run_dir, agent, heal=heal)
        agent.close()
    return result


def test_unchanged_app_replays_with_zero_model_calls(recorded, tmp_path):
    _, run_dir = recorded
    model = ScriptedModel([])
    result = replay(run_dir, tmp_path, model=model)
    assert result.status == "passed" and result.divergences == [] and model.calls == 0
    assert [s.kind for s in result.steps] == [s.kind for s in read_run(run_dir).steps]


def test_changed_label_stops_replay_at_the_right_step(recorded, tmp_path):
    app, run_dir = recorded
    relabel(app, "Sign in", "Log in")
    result = replay(run_dir, tmp_path)
    assert result.status == "diverged"
    d = result.divergences[0]
    assert (d.step, d.kind, d.instruction) == (3, "click", "Sign in")
    assert d.global_score > 0.9 and d.local_score < 0.8  # the whole frame barely changed; the button did
    pic = Image.open(d.picture)
    assert pic.width > 2 * 1280 and pic.height > 800
    assert len(result.steps) == 3  # steps 0-2 were replayed, step 3 was not acted on


def test_heal_fixes_the_changed_step_with_one_model_call(recorded, tmp_path):
    app, run_dir = recorded
    relabel(app, "Sign in", "Log in")
    model = ScriptedModel(['```json\n[{"point_2d": [263, 418], "label": "Log in"}]\n```'])
    result = replay(run_dir, tmp_path, model=model, heal=True)
    assert result.status == "healed" and model.calls == 1 and len(result.divergences) == 1
    healed = next(s for s in result.steps if s.kind == "click" and s.instruction == "Sign in")
    assert healed.locator == "model"
    assert (
        result.steps[-1].kind == "see" and result.steps[-1].outcome == "passed"
    )  # the rest replayed: logged in, ordered


def test_similarity_is_one_for_the_same_picture_and_drops_for_another():
    a = Image.new("RGB", (200, 100), "white")
    b = a.copy()
    b.paste((0, 0, 0), (50, 20, 150, 80))
    assert similarity(a, a) == pytest.approx(1.0) and similarity(a, b) < 0.8


def test_replay_cli(recorded, tmp_path):
    app, run_dir = recorded

    def replay(out: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pixelpilot.tasks.cli", "replay", str(run_dir), "-o", str(tmp_path / out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            timeout=120,
        )

    ok = replay("r1")
    assert ok.returncode == 0 and "PASSED replay" in ok.stdout and "0 model call(s)" in ok.stdout
    relabel(app, "Sign in", "Log in")
    bad = replay("r2")
    assert bad.returncode == 1 and "DIVERGED" in bad.stdout and "step 3 diverged" in bad.stdout
    new_run = run_dirs(tmp_path / "r2")[0]
    assert (new_run / "divergence-3.png").is_file() and read_run(new_run).meta["replay"] == "diverged"
