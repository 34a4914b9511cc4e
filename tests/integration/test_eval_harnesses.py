"""benchmarks/agent_eval.py and benchmarks/grounding_eval.py end to end: the tiny Qwen3-VL with random
weights (the real processor → generate → parse path) scores nothing; the scripted oracle scores every
episode and every question — the harnesses' scoring, proved on MiniWoB++'s own pages and the demo app."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def test_agent_eval_scores_the_oracle_every_episode_and_resumes(chromium, tmp_path):
    out = tmp_path / "oracle.json"
    tasks = ["--tasks", "click-test", "click-button", "click-link", "enter-text"]
    first = bench("agent_eval.py", "--model", "oracle", *tasks, "--seeds", "1", "--out", str(out))
    assert "[4/4] ok " in first.stdout  # progress, one line per episode
    again = bench("agent_eval.py", "--model", "oracle", *tasks, "--seeds", "2", "--out", str(out))
    assert "resuming: 4 episodes" in again.stdout and "[4/4]" in again.stdout and "[5/" not in again.stdout
    episodes = json.loads(out.read_text())["episodes"]
    assert sorted((e["task"], e["seed"]) for e in episodes) == sorted(
        (t, s) for t in tasks[1:] for s in (0, 1)
    )
    assert all(e["success"] and e["raw"] == 1 and e["loop"] == "done" for e in episodes), episodes
    enter = [e for e in episodes if e["task"] == "enter-text"]
    assert all(e["steps"] == 3 and e["model_calls"] == 3 and e["tokens_out"] > 0 for e in enter)
    table = out.with_suffix(".md").read_text()
    assert "| enter-text | 2 | 2/2 (100 %) | 3.0 | 3.0 |" in table
    assert "**Success: 8/8 episodes (100.0 %) over 4 tasks.**" in table

    # the same results file, another model: refused, not mixed
    res = subprocess.run(
        [sys.executable, "benchmarks/agent_eval.py", "--model", "qwen3-vl-2b", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "another configuration" in res.stderr


def test_agent_eval_with_random_weights_succeeds_nowhere(chromium, tiny_random_dir, tmp_path):
    out = tmp_path / "random.json"
    bench(
        "agent_eval.py",
        "--model",
        str(tiny_random_dir),
        "--tasks",
        "click-test",
        "--seeds",
        "1",
        "--max-steps",
        "2",
        "--out",
        str(out),
    )
    (episode,) = json.loads(out.read_text())["episodes"]
    assert not episode["success"] and episode["loop"] == "error", episode
    assert (
        episode["model_calls"] == 2 and episode["tokens_in"] > 500
    )  # the screenshot went through the processor
    assert "| click-test | 1 | 0/1 (0 %) |" in out.with_suffix(".md").read_text()


def test_grounding_eval_scores_the_oracle_100_and_random_weights_0(chromium, tiny_random_dir, tmp_path):
    out = tmp_path / "oracle.json"
    res = bench(
        "grounding_eval.py",
        "--model",
        "oracle",
        "--pages",
        "demo",
        "click-button",
        "--viewports",
        "800x600",
        "--scales",
        "1",
        "2",
        "--out",
        str(out),
    )
    assert "[4/4] click-button       800x600@2x" in res.stdout
    questions = json.loads(out.read_text())["questions"]
    assert len(questions) > 20 and all(q["hit"] for q in questions)
    assert {q["prompt"] for q in questions} == {"point", "bbox"}
    assert {q["config"] for q in questions} == {"800x600@1x", "800x600@2x"}
    assert {"button", "textbox"} <= {q["role"] for q in questions}
    # at scale 2 the boxes are twice as big in the screenshot, and the oracle's points still land
    one = {q["config"]: q["box"] for q in questions if q["name"] == "Sign in" and q["prompt"] == "point"}
    assert one["800x600@2x"][2] == pytest.approx(2 * one["800x600@1x"][2], abs=2)
    table = out.with_suffix(".md").read_text()
    assert "| button |" in table and "(100.0 %)" in table

    rand = tmp_path / "random.json"
    bench(
        "grounding_eval.py",
        "--model",
        str(tiny_random_dir),
        "--pages",
        "demo",
        "--viewports",
        "640x400",
        "--scales",
        "1",
        "--prompts",
        "point",
        "--max-targets",
        "2",
        "--out",
        str(rand),
    )
    questions = json.loads(rand.read_text())["questions"]
    assert len(questions) == 2 and not any(q["hit"] for q in questions)
    assert all(q.get("error") for q in questions)  # random text is no point_2d: a miss, with the reason
    assert "point_2d: 0/2 (0.0 %)" in rand.with_suffix(".md").read_text()
