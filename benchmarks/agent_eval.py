"""The goal loop on MiniWoB++ with any model: success rate, steps, model calls, tokens and time per step.

Each episode opens a MiniWoB++ task (PyPI ``miniwob``, its own pages) in headless Chromium, starts it with
a seed (MiniWoB's own protocol, as its Selenium environment does), and gives the model **the task's
utterance, verbatim, as the goal** (``Click on the "Submit" button.``) — the same words the page shows
above the task. The model then acts through the goal loop (screenshots, the cookbook's computer_use
tool) until MiniWoB says the episode is over, the model answers or terminates, or ``--max-steps`` run
out. Success is MiniWoB's raw reward 1 (its time-discounted reward is recorded too); an episode may last
``--episode-seconds`` (120; MiniWoB's own 10 s limit is a person's, and would measure a slow model's speed).

The default task list (``TASKS``) is 16 tasks of the MiniWoB++ suite that need clicks, typing and
choices but no drawing or dragging; ``--tasks`` picks others.

    # a local checkpoint (a GPU), a GUI-tuned derivative with its profile, a vLLM server
    python benchmarks/agent_eval.py --model qwen3-vl-4b --seeds 5
    python benchmarks/agent_eval.py --model /models/GUI-Owl-1.5-7B --profile gui-owl --seeds 5
    python benchmarks/agent_eval.py --model openai:http://gpu-host:8000/v1 --seeds 5

Results go to ``--out`` (JSON, one record per episode, rewritten after each one: an interrupted run
resumes where it stopped) and the same path with ``.md`` (a table per task). ``--model oracle`` is the
test suite's scripted oracle (``tests/support/oracle.py``): it proves the harness scores a right answer
as 1, not that any model is good.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _eval import add_model_args, describe, load, resume, save  # noqa: E402
from miniwob_scripted import open_task, reward, start_episode  # noqa: E402

from pixelpilot.agent import Agent, PixelPilotError  # noqa: E402
from pixelpilot.agent.memory import StepRecord  # noqa: E402
from pixelpilot.drivers import BrowserDriver  # noqa: E402

TASKS = [
    "click-test",
    "click-test-2",
    "click-button",
    "click-button-sequence",
    "click-link",
    "click-dialog",
    "click-option",
    "click-checkboxes",
    "click-tab",
    "focus-text",
    "focus-text-2",
    "enter-text",
    "enter-text-2",
    "enter-password",
    "login-user",
    "unicode-test",
]
VIEWPORT = (500, 320)
"""The page: MiniWoB's 160×210 task area with its utterance, and room around it."""


def oracle_for(task: str, utterance: str, driver: BrowserDriver) -> Any:
    """The test suite's oracle, with a plan for this episode (its targets located on the live page)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.oracle import TreeOracle, miniwob_plan

    oracle = TreeOracle(miniwob_plan(task, utterance))
    oracle.driver = driver
    return oracle.model()


def episode(
    driver: BrowserDriver,
    model: Any,
    task: str,
    seed: int,
    max_steps: int,
    make: Callable[..., Any] | None,
    episode_seconds: float = 120,
) -> dict[str, Any]:
    page = driver.page
    page.evaluate(f"core.EPISODE_MAX_TIME = {int(episode_seconds * 1000)}")
    utterance = start_episode(page, seed)
    if make is not None:
        model = make(task, utterance, driver)
    agent = Agent(driver, model=model)
    steps: list[StepRecord] = []
    status, reason = "budget", f"{max_steps} steps without an end"
    t0 = time.perf_counter()
    gen = agent.iter(utterance, max_steps=max_steps)
    try:
        while True:
            steps.append(next(gen))
            if steps[-1].outcome == "passed" and page.evaluate("WOB_DONE_GLOBAL === true"):
                status, reason = "done", "MiniWoB ended the episode"
                break
    except StopIteration as stop:
        status, reason = stop.value.status, stop.value.reason
    except PixelPilotError as exc:
        status, reason = "error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        gen.close()
    wall = time.perf_counter() - t0
    if not page.evaluate("WOB_DONE_GLOBAL === true"):
        page.evaluate("core.endEpisode(-1, false, 'the agent stopped')")
    got = reward(page)
    calls = [c for s in steps for c in ((s.model or {}).get("calls") or [])]
    return {
        "task": task,
        "seed": seed,
        "utterance": utterance,
        "success": got["raw"] == 1,
        "raw": got["raw"],
        "reward": got["reward"],
        "loop": status,
        "reason": reason,
        "miniwob_reason": got.get("reason"),
        "steps": len(steps),
        "model_calls": len(calls),
        "tokens_in": sum(int(c.get("tokens_in") or 0) for c in calls),
        "tokens_out": sum(int(c.get("tokens_out") or 0) for c in calls),
        "ms_per_step": round(statistics.mean(s.timings.get("total", 0) for s in steps), 1) if steps else None,
        "model_ms_per_call": round(statistics.mean(c["latency_ms"] for c in calls), 1) if calls else None,
        "seconds": round(wall, 2),
        "errors": [f"{s.error_type}: {s.error}" for s in steps if s.error],
    }


def table(config: dict[str, Any], episodes: list[dict[str, Any]]) -> str:
    def mean(rs: list[dict[str, Any]], key: str) -> str:
        vals = [r[key] for r in rs if r.get(key) is not None]
        return f"{statistics.mean(vals):.1f}" if vals else "–"

    lines = [
        f"# The goal loop on MiniWoB++: {config['model']}",
        "",
        f"Command: `{config['command']}`  ",
        f"Machine: {config['machine']}. Date: {config['date']}. Max {config['max_steps']} steps per episode; "
        f"viewport {VIEWPORT[0]}×{VIEWPORT[1]}; the goal is the task's utterance, verbatim.",
        "",
        "| task | episodes | success | steps | model calls | tokens in | tokens out | ms per step | how episodes ended |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    by: dict[str, list[dict[str, Any]]] = {}
    for r in episodes:
        by.setdefault(r["task"], []).append(r)
    for task, rs in by.items():
        ok = sum(r["success"] for r in rs)
        ends = ", ".join(f"{k} {v}" for k, v in sorted(Counter(r["loop"] for r in rs).items()))
        lines.append(
            f"| {task} | {len(rs)} | {ok}/{len(rs)} ({100 * ok / len(rs):.0f} %) | {mean(rs, 'steps')} | "
            f"{mean(rs, 'model_calls')} | {mean(rs, 'tokens_in')} | {mean(rs, 'tokens_out')} | {mean(rs, 'ms_per_step')} | {ends} |"
        )
    ok = sum(r["success"] for r in episodes)
    n = len(episodes) or 1
    lines += [
        "",
        f"**Success: {ok}/{len(episodes)} episodes ({100 * ok / n:.1f} %) over {len(by)} tasks.**",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    ap.add_argument("--seeds", type=int, default=3, help="episodes per task (seeds 0..N-1)")
    ap.add_argument("--max-steps", type=int, default=8)
    ap.add_argument(
        "--episode-seconds",
        type=float,
        default=120,
        help="MiniWoB's episode time limit (its own default, 10 s, is a person's: a model on a CPU would run out)",
    )
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/agent_eval.json"))
    args = ap.parse_args(argv)
    config = describe(
        "agent_eval.py", args, argv, max_steps=args.max_steps, episode_seconds=args.episode_seconds
    )
    episodes = resume(args.out, config, "episodes", ("model", "max_steps"))
    done = {(r["task"], r["seed"]) for r in episodes}
    todo = [(t, s) for t in args.tasks for s in range(args.seeds) if (t, s) not in done]
    if done:
        print(f"resuming: {len(done)} episodes in {args.out}, {len(todo)} to go", flush=True)
    model = load(args)
    make = oracle_for if args.model == "oracle" else None
    started = time.perf_counter()
    with BrowserDriver.launch(viewport=VIEWPORT) as driver:
        current = None
        for n, (task, seed) in enumerate(todo, 1):
            if task != current:
                open_task(driver, task)
                current = task
            r = episode(driver, model, task, seed, args.max_steps, make, args.episode_seconds)
            episodes.append(r)
            save(args.out, config, "episodes", episodes)
            ok = sum(e["success"] for e in episodes)
            eta = (time.perf_counter() - started) / n * (len(todo) - n)
            print(
                f"[{n}/{len(todo)}] {'ok ' if r['success'] else 'BAD'} {task:<22} seed {seed}  {r['steps']} steps "
                f"{r['seconds']:.1f} s  ({r['loop']}: {r['reason'][:60]})  success so far {ok}/{len(episodes)}  ETA {eta:.0f} s",
                flush=True,
            )
    args.out.with_suffix(".md").write_text(table(config, episodes))
    ok = sum(e["success"] for e in episodes)
    print(f"{ok}/{len(episodes)} episodes succeeded → {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
