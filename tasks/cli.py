"""The ``pixelpilot`` command: run | report | schema | doctor.

Exit codes: 0 passed, 1 a task failed, 2 usage or task-file error, 3 environment error (no browser,
no display, no device, no GPU), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.errors import ConfigError, DriverUnavailable, ModelError
from agent.memory import StepRecord

from .runner import ExitCode, RunOptions, TaskResult, run_task

__all__ = ["main"]

_MARK = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[red]![/]", "interrupted": "[yellow]■[/]"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pixelpilot", description="Automate graphical interfaces by looking at them."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what the framework does")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run YAML task files")
    r.add_argument("tasks", nargs="+", type=Path, help="task files (*.yaml)")
    r.add_argument(
        "--output", "-o", type=Path, default=Path("runs"), help="where run directories go (default: runs/)"
    )
    r.add_argument("--headed", action="store_true", help="show the browser window (needs a display)")
    r.add_argument(
        "--slowmo", type=float, default=None, help="milliseconds to wait between browser operations"
    )
    r.add_argument(
        "--driver",
        choices=["browser", "desktop", "android"],
        default=None,
        help="override the task file's driver",
    )
    r.add_argument(
        "--model",
        default=None,
        help="qwen3-vl-2b|4b|8b[-thinking], a hub id, a directory, or openai:<base_url>",
    )
    r.add_argument(
        "--model-name", default=None, help="with openai:<url>: the served model (default: the only one)"
    )

    pr = sub.add_parser(
        "parse-reply", help="parse a model reply from stdin and show the action in grid and pixels"
    )
    pr.add_argument("--screen", required=True, help="screenshot size WxH, e.g. 2560x1440")
    pr.add_argument("--space", choices=["computer_use", "mobile_use"], default="computer_use")
    pr.add_argument(
        "--divisor",
        type=int,
        default=None,
        help="the grid (default 1000 for computer_use, 999 for mobile_use)",
    )
    pr.add_argument("--image", type=Path, help="a frame to draw the point on")
    pr.add_argument("--out", type=Path, help="where to write the marked frame (with --image)")

    rep = sub.add_parser("report", help="(re)write and locate the HTML report of a run directory")
    rep.add_argument("run_dir", type=Path)

    sub.add_parser("schema", help="print the task file's JSON Schema")
    sub.add_parser(
        "doctor", help="check what pixelpilot needs on this machine and how to fix what is missing"
    )
    return p


class _Progress:
    """One line per finished step: [n/total] mark, verb, target, locator, time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.total = 0
        self.started = time.monotonic()

    def start(self, task: object, run_dir: Path) -> None:
        self.total = len(getattr(task, "steps", []))
        self.started = time.monotonic()
        name = getattr(task, "name", None) or run_dir.name
        self.console.print(f"[bold]▶ {name}[/]  [dim]{self.total} steps → {run_dir}[/]")

    def step(self, rec: StepRecord) -> None:
        done = rec.index + 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * max(self.total - done, 0)
        how = f"[dim]{rec.locator}[/] " if rec.locator else ""
        self.console.print(
            f"  {_MARK.get(rec.outcome, '?')} [{done}/{self.total}] [bold]{rec.kind:<8}[/] {rec.instruction[:60]}  "
            f"{how}[dim]{rec.timings.get('total', 0):.0f} ms · ETA {eta:.0f} s[/]",
            highlight=False,
        )
        if rec.error:
            self.console.print(f"      [red]{rec.error}[/]", highlight=False)


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    opts = RunOptions(
        output=args.output,
        headed=args.headed or None,
        slow_mo=args.slowmo,
        model=args.model,
        model_name=args.model_name,
        driver=args.driver,
    )
    results: list[TaskResult] = []
    for path in args.tasks:
        progress = _Progress(console)
        try:
            res = run_task(path, opts, on_step=progress.step, on_start=progress.start)
        except ConfigError as exc:
            console.print(f"[red]error:[/] {exc}", highlight=False)
            return ExitCode.USAGE
        except DriverUnavailable as exc:
            console.print(f"[red]environment:[/] {exc}", highlight=False)
            return ExitCode.ENVIRONMENT
        except ModelError as exc:
            console.print(f"[red]model:[/] {exc}", highlight=False)
            return ExitCode.ENVIRONMENT
        results.append(res)
        color = "green" if res.status == "passed" else "red"
        console.print(
            f"[{color}]{res.status.upper()}[/] {res.task} · report: {res.run_dir / 'report.html' if res.run_dir else '-'}",
            highlight=False,
        )
        if res.error and res.status != "passed":
            console.print(f"  [red]{res.error.splitlines()[0]}[/]", highlight=False)
        if res.status == "interrupted":
            return ExitCode.INTERRUPTED
    return max((r.exit_code for r in results), default=ExitCode.PASSED)


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    from agent.report import write_report
    from agent.runlog import read_run

    try:
        run = read_run(args.run_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return ExitCode.USAGE
    out = write_report(args.run_dir)
    console.print(f"{run.meta.get('task')} · {run.meta.get('status')} · {len(run.steps)} steps")
    for p in run.problems:
        console.print(f"  [yellow]note:[/] {p}", highlight=False)
    console.print(str(out))
    return ExitCode.PASSED


def _cmd_schema(console: Console) -> int:
    from .spec import schema_json

    sys.stdout.write(schema_json() + "\n")
    return ExitCode.PASSED


def _cmd_doctor(console: Console) -> int:
    from .doctor import checks

    table = Table(title="pixelpilot doctor", show_lines=False)
    table.add_column("what")
    table.add_column("status")
    table.add_column("detail / fix")
    missing_required = False
    for c in checks():
        status = "[green]ok[/]" if c.ok else ("[red]missing[/]" if c.required else "[yellow]missing[/]")
        table.add_row(c.name + ("" if c.required else " (optional)"), status, c.detail if c.ok else c.fix)
        missing_required |= c.required and not c.ok
    console.print(table)
    return ExitCode.ENVIRONMENT if missing_required else ExitCode.PASSED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False, highlight=False)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "run":
            return _cmd_run(args, console)
        if args.command == "report":
            return _cmd_report(args, console)
        if args.command == "parse-reply":
            from .parse_reply import cmd_parse_reply

            return cmd_parse_reply(args, console)
        if args.command == "parse-reply":
            from .parse_reply import cmd_parse_reply

            return cmd_parse_reply(args, console)
        if args.command == "schema":
            return _cmd_schema(console)
        if args.command == "doctor":
            return _cmd_doctor(console)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        return ExitCode.INTERRUPTED
    return ExitCode.USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
