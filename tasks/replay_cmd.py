"""``pixelpilot replay RUN_DIR``: re-execute a recorded run without the model; ``--heal`` fixes divergences."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from pixelpilot.agent.errors import ConfigError, DriverUnavailable, ModelError
from pixelpilot.agent.replay import replay_run
from pixelpilot.agent.runlog import RunWriter, read_run, slugify
from pixelpilot.agent.session import Agent
from pixelpilot.tasks.runner import ExitCode, RunOptions, make_driver
from pixelpilot.tasks.spec import TaskFile, load_task

__all__ = ["add_parser", "cmd_replay"]


def add_parser(sub: Any) -> None:
    rp = sub.add_parser("replay", help="re-execute a recorded run without the model, checking every frame")
    rp.add_argument("run_dir", type=Path)
    rp.add_argument(
        "--heal", action="store_true", help="ask the model for the steps whose screen changed, and go on"
    )
    rp.add_argument("--model", default=None, help="model for --heal (default: the run's own)")
    rp.add_argument("--model-name", default=None)
    rp.add_argument(
        "--output", "-o", type=Path, default=Path("runs"), help="where the replay's run goes (default: runs/)"
    )
    rp.add_argument(
        "--threshold", type=float, default=0.85, help="minimum whole-frame similarity (SSIM, 0..1)"
    )
    rp.add_argument(
        "--local-threshold", type=float, default=0.80, help="minimum similarity where the step acted"
    )
    rp.add_argument("--headed", action="store_true")


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    try:
        run = read_run(args.run_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return ExitCode.USAGE
    meta = run.meta
    task_file = Path(meta["task_file"]) if meta.get("task_file") else None
    try:
        task = (
            load_task(task_file)
            if task_file and task_file.is_file()
            else TaskFile.model_validate({"driver": meta.get("driver", "browser"), "steps": [{"see": "-"}]})
        )
        base = task_file.parent if task_file else Path.cwd()
        model = None
        if args.heal:
            from pixelpilot.agent.models import load_model

            spec = args.model or meta.get("model")
            if not spec:
                console.print("[red]error:[/] --heal needs a model: --model ...", highlight=False)
                return ExitCode.USAGE
            model = load_model(spec, model_name=args.model_name)
        driver = make_driver(task, RunOptions(output=args.output, headed=args.headed or None), base)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return ExitCode.USAGE
    except (DriverUnavailable, ModelError) as exc:
        console.print(f"[red]environment:[/] {exc}", highlight=False)
        return ExitCode.ENVIRONMENT
    name = f"replay-{slugify(str(meta.get('task', 'run')))}"
    recorder = RunWriter(
        args.output,
        name,
        meta={
            "task": name,
            "driver": driver.name,
            "replay_of": str(args.run_dir),
            "model": getattr(model, "name", None),
            "task_file": str(task_file) if task_file else None,
        },
    )
    agent = Agent(driver, model=model, recorder=recorder, task=name)
    try:
        result = replay_run(
            args.run_dir,
            agent,
            threshold=args.threshold,
            local_threshold=args.local_threshold,
            heal=args.heal,
        )
    finally:
        driver.close()
    status = "passed" if result.status in ("passed", "healed") else "failed"
    recorder.finish(
        status,
        error=result.reason or None,
        replay=result.status,
        model_calls=result.model_calls,
        divergences=[d.__dict__ | {"picture": str(d.picture)} for d in result.divergences],
    )
    color = "green" if status == "passed" else "red"
    console.print(
        f"[{color}]{result.status.upper()}[/] replay of {args.run_dir} · {len(result.steps)} steps · "
        f"{result.model_calls} model call(s) · run: {recorder.path}",
        highlight=False,
    )
    if result.reason:
        console.print(f"  {result.reason}", highlight=False)
    for d in result.divergences:
        console.print(
            f"  step {d.step} diverged ({d.describe()}): {d.picture}",
            highlight=False,
        )
    return ExitCode.PASSED if status == "passed" else ExitCode.FAILED
