"""`pixelpilot run` over many task files (the live table, workers, Ray, JUnit, batch.json) and
`pixelpilot merge`: the command line's batch half (see :mod:`pixelpilot.tasks.cli`)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from pixelpilot.agent.errors import ConfigError, DriverError
from pixelpilot.tasks.runner import ExitCode

__all__ = ["cmd_batch", "cmd_merge"]


def _passthrough(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    if args.cache:
        out.append("--cache")
    if args.headed:
        out.append("--headed")
    if args.yes:
        out.append("--yes")
    for flag, value in (
        ("--slowmo", args.slowmo),
        ("--browser-endpoint", args.browser_endpoint),
        ("--model", args.model),
        ("--model-name", args.model_name),
        ("--driver", args.driver),
        ("--model-timeout", args.model_timeout),
        ("--timeout", args.timeout),
        ("--step-timeout", args.step_timeout),
        ("--secrets", args.secrets.resolve() if args.secrets else None),
    ):
        if value is not None:
            out += [flag, str(value)]
    return out


def _table(outcomes: list[Any], started: float, workers: int) -> Table:
    done = [o for o in outcomes if o.status not in ("pending", "running")]
    mean = sum(o.seconds for o in done) / len(done) if done else None
    left = sum(o.status in ("pending", "running") for o in outcomes)
    eta = f"{mean * left / max(1, workers):.0f} s" if mean is not None and left else ("—" if left else "0 s")
    t = Table(
        title=f"{len(done)}/{len(outcomes)} tasks · {time.monotonic() - started:.0f} s · ETA {eta}",
        title_justify="left",
    )
    for col in ("task", "step", "status", "time"):
        t.add_column(col)
    style = {
        "passed": "green",
        "failed": "red",
        "error": "red",
        "running": "cyan",
        "pending": "dim",
        "interrupted": "yellow",
    }
    for o in outcomes:
        step = (
            f"{o.steps_done}/{o.steps_total}"
            if o.steps_total
            else (str(o.steps_done) if o.steps_done else "")
        )
        t.add_row(
            Text(o.path.name),
            step,
            Text(
                o.status
                + (
                    " (flaky)"
                    if o.flaky
                    else f" (try {len(o.attempts) + 1})"
                    if o.attempts and o.status == "running"
                    else ""
                ),
                style=style.get(o.status, ""),
            ),
            f"{o.seconds:.1f} s" if o.started else "",
        )
    return t


def cmd_batch(
    args: argparse.Namespace,
    console: Console,
    tasks: list[Path],
    *,
    total: int,
    shard: tuple[int, int] | None,
) -> int:
    from rich.live import Live

    from pixelpilot.tasks.batch import run_batch, write_junit

    where = f" (shard {shard[0]}/{shard[1]} of {total})" if shard else ""
    devices = [d for d in (args.devices or "").split(",") if d.strip()]
    workers = min(args.workers, len(devices)) if devices else args.workers
    how = (
        "on Ray"
        if args.executor == "ray"
        else f"{workers} worker(s)" + (", drivers kept" if args.keep_drivers else "")
    )
    console.print(f"[bold]▶ {len(tasks)} task file(s){where} · {how} → {escape(str(args.output))}[/]")
    started = time.monotonic()
    with Live(
        _table([], started, args.workers),
        console=console,
        refresh_per_second=4,
        transient=not console.is_terminal,
    ) as live:
        update = lambda outs: live.update(_table(outs, started, args.workers))  # noqa: E731
        if args.executor == "ray":
            from pixelpilot.tasks.ray_executor import run_batch_ray

            try:
                result = run_batch_ray(
                    tasks,
                    output=args.output,
                    address=args.address or os.environ.get("RAY_ADDRESS") or None,
                    workers=args.workers if args.workers > 1 else None,
                    extra_args=_passthrough(args),
                    driver=args.driver,
                    retries=args.retries,
                    keep_drivers=args.keep_drivers,
                    on_update=update,
                )
            except DriverError as exc:
                live.stop()
                console.print(f"[red]environment:[/] {escape(str(exc))}", highlight=False)
                return ExitCode.ENVIRONMENT
        else:
            result = run_batch(
                tasks,
                output=args.output,
                workers=args.workers,
                keep_drivers=args.keep_drivers,
                retries=args.retries,
                timeout=args.timeout,
                devices=[d.strip() for d in (args.devices or "").split(",") if d.strip()],
                extra_args=_passthrough(args),
                on_update=update,
            )
    if not console.is_terminal:
        console.print(_table(result.outcomes, started, args.workers))
    from pixelpilot.tasks.merge import write_batch

    try:  # what ran, for `pixelpilot merge` of several shards' outputs
        write_batch(result, args.output, shard=shard)
    except OSError as exc:
        console.print(f"[yellow]warning:[/] cannot write {escape(str(args.output / 'batch.json'))}: {exc}")
    for o in result.outcomes:
        if o.status != "passed":
            console.print(
                f"[red]{o.status.upper()}[/] {escape(str(o.path))}: "
                + escape((o.error or "").splitlines()[0] if o.error else ""),
                highlight=False,
            )
            if o.run_dir:
                console.print(f"  report: {escape(str(o.run_dir / 'report.html'))}", highlight=False)
    if args.junit:
        try:
            write_junit(result, args.junit)
        except OSError as exc:
            console.print(
                f"[red]environment:[/] cannot write {escape(str(args.junit))}: {escape(exc.strerror or str(exc))}"
            )
            return ExitCode.ENVIRONMENT
        console.print(f"JUnit: {escape(str(args.junit))}")
    passed = sum(o.status == "passed" for o in result.outcomes)
    stopped = sum(o.status == "interrupted" for o in result.outcomes)
    flaky = sum(o.flaky for o in result.outcomes)
    line = f"{passed} passed, {len(result.outcomes) - passed - stopped} failed"
    if flaky:
        line += f" ({flaky} flaky: passed on a retry)"
    if stopped:
        line += f", {stopped} interrupted"
    console.print(line, highlight=False)
    return result.exit_code


def cmd_merge(args: argparse.Namespace, console: Console) -> int:
    from pixelpilot.tasks.merge import merge_outputs

    try:
        result = merge_outputs(args.outputs, args.into, junit=args.junit)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    passed = sum(o.status == "passed" for o in result.outcomes)
    flaky = sum(o.flaky for o in result.outcomes)
    console.print(
        f"{len(result.outcomes)} tasks from {len(args.outputs)} outputs → {escape(str(args.into))}: "
        f"{passed} passed, {len(result.outcomes) - passed} not" + (f" ({flaky} flaky)" if flaky else ""),
        highlight=False,
    )
    console.print(
        f"summary: {escape(str(args.into / 'index.html'))} · JUnit: {escape(str(args.junit or args.into / 'junit.xml'))}"
    )
    return result.exit_code
