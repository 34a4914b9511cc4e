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
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
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


def load(args: argparse.Namespace) -> Any:
    """The model from ``--model`` (a name, hub id, directory or openai:URL; ``oracle``: the test suite's)."""
    if args.model == "oracle":
        return None  # built per episode (it needs the episode's driver)
    from pixelpilot.agent.models import load_model

    options: dict[str, Any] = {}
    if not args.model.startswith("openai:"):
        options["allow_cpu"] = True
        if args.engine is not None:
            options["engine"] = args.engine
    if args.profile:
        options["profile"] = args.profile
    return load_model(args.model, model_name=args.model_name, **options)


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


def _load_results(path: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise SystemExit(
            f"{path} is not the JSON of an earlier run ({exc}); move it away or pick another --out"
        ) from None
    if (
        data.get("config", {}).get("model") != config["model"]
        or data.get("config", {}).get("max_steps") != config["max_steps"]
    ):
        raise SystemExit(
            f"{path} holds results of another configuration ({data.get('config')}); resume with the same "
            "--model and --max-steps, or pick another --out"
        )
    return list(data.get("episodes", []))


def _save(path: Path, config: dict[str, Any], episodes: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"config": config, "episodes": episodes}, indent=1))
    os.replace(tmp, path)


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
        ends = ", ".join(f"{k} {v}" for k, v in sorted(_count(r["loop"] for r in rs).items()))
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


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", required=True, help="qwen3-vl-2b|4b|8b, a hub id, a directory, openai:URL, or oracle"
    )
    ap.add_argument("--model-name", default=None, help="openai: the served model's name")
    ap.add_argument(
        "--profile", default=None, help="a model profile (pixelpilot.agent.qwen.profile.PROFILES)"
    )
    ap.add_argument(
        "--engine", action=argparse.BooleanOptionalAction, default=None, help="local: the fast engine"
    )
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
    config = {
        "model": args.model
        + (f"#{args.model_name}" if args.model_name else "")
        + (f" ({args.profile})" if args.profile else ""),
        "max_steps": args.max_steps,
        "episode_seconds": args.episode_seconds,
        "command": "python benchmarks/agent_eval.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    episodes = _load_results(args.out, config)
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
            _save(args.out, config, episodes)
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
