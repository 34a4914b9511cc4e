"""The ``pixelpilot`` command: run | report | schema | doctor.

Exit codes: 0 passed, 1 a task failed, 2 usage or task-file error, 3 environment error (no browser,
no display, no device, no GPU), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pixelpilot.agent.errors import ConfigError, DriverError, ModelError, PixelPilotError, RunLogError
from pixelpilot.agent.memory import StepRecord
from pixelpilot.tasks.asking import FileAsk
from pixelpilot.tasks.runner import ExitCode, RunOptions, TaskResult, run_task

if TYPE_CHECKING:
    from pixelpilot.tasks.keeper import DriverKeeper

__all__ = ["main"]

_MARK = {"passed": "[green]✓[/]", "failed": "[red]✗[/]", "error": "[red]![/]", "interrupted": "[yellow]■[/]"}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (a number > 0), got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pixelpilot", description="Automate graphical interfaces by looking at them."
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log what the framework does")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="run YAML task files")
    r.add_argument("tasks", nargs="+", type=Path, help="task files (*.yaml), or folders of them")
    r.add_argument(
        "--workers",
        "-j",
        type=_positive_int,
        default=1,
        help="run this many task files in parallel (one process and driver each)",
    )
    r.add_argument(
        "--keep-drivers",
        action="store_true",
        help="each worker keeps its browser (a fresh context per task), desktop or device across tasks",
    )
    r.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="N",
        help="run a failed task again, up to N times (a later pass is reported as flaky)",
    )
    r.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a long-lived worker
    r.add_argument(
        "--devices",
        default=None,
        metavar="SERIAL,...",
        help="Android devices for a batch: one per worker, never shared (at most that many workers)",
    )
    r.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="where a batch's tasks run: processes here (default), or a Ray cluster (pixelpilot[ray])",
    )
    r.add_argument(
        "--address",
        default=None,
        help="with --executor ray: the cluster (auto, host:port, ray://host:10001); default: $RAY_ADDRESS, "
        "else a local Ray started for the batch",
    )
    r.add_argument(
        "--shard",
        nargs="?",
        const="auto",
        default=None,
        help="i/n: run the i-th of n deterministic shards (CI matrices); alone or 'auto': from "
        "$JOB_COMPLETION_INDEX/$JOB_COMPLETION_COUNT (Kubernetes Indexed Jobs) or $CI_NODE_INDEX/$CI_NODE_TOTAL",
    )
    r.add_argument("--junit", type=Path, default=None, help="write JUnit XML here")
    r.add_argument(
        "--cache",
        action="store_true",
        default=None,
        help="reuse the last passing run's verified targets and decisions",
    )
    r.add_argument("--result-json", type=Path, default=None, help=argparse.SUPPRESS)
    r.add_argument("--run-dir-file", type=Path, default=None, help=argparse.SUPPRESS)
    r.add_argument("--confirm-file", type=Path, default=None, help=argparse.SUPPRESS)  # the console asks
    r.add_argument(
        "--output", "-o", type=Path, default=Path("runs"), help="where run directories go (default: runs/)"
    )
    r.add_argument("--headed", action="store_true", help="show the browser window (needs a display)")
    r.add_argument(
        "--browser-endpoint",
        default=None,
        metavar="URL",
        help="use a browser that runs elsewhere: ws://host:port/... (a Playwright browser server) or "
        "http://host:9222 (a Chromium's DevTools endpoint); also $PIXELPILOT_BROWSER_ENDPOINT",
    )
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
    r.add_argument(
        "--yes",
        action="store_true",
        help="allow every action the task's policy asks to confirm (no terminal needed)",
    )
    r.add_argument(
        "--secrets",
        type=Path,
        default=None,
        help="a dotenv file of secrets (NAME=value) for type: {secret: NAME} and ${secret:NAME}; "
        "the environment is read too. Their values are written nowhere",
    )
    r.add_argument(
        "--model-timeout",
        type=_positive_float,
        default=None,
        help="seconds one model-server request may take in all (default 120)",
    )
    r.add_argument(
        "--timeout", type=_positive_float, default=None, help="seconds a task may run before it fails"
    )
    r.add_argument(
        "--step-timeout", type=_positive_float, default=None, help="seconds a step may take before it fails"
    )

    ui = sub.add_parser("ui", help="the web console: runs, live runs, the model playground")
    ui.add_argument("--runs", type=Path, default=Path("runs"), help="the runs folder (default: runs/)")
    ui.add_argument("--port", type=int, default=7860)
    ui.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; any other needs --token")
    ui.add_argument("--token", default=None, help="required for non-loopback hosts (or PIXELPILOT_UI_TOKEN)")
    ui.add_argument(
        "--tasks", type=Path, default=Path("."), help="where the task files to launch are (default: .)"
    )
    ui.add_argument("--model", default=None, help="the playground's model (and the default for launches)")

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

    from pixelpilot.tasks.replay_cmd import add_parser as add_replay

    add_replay(sub)

    ex = sub.add_parser(
        "export", help="write a run (the model's steps included) as a task file of scripted steps"
    )
    ex.add_argument("run_dir", type=Path)
    ex.add_argument("-o", "--out", type=Path, default=None, help="the task file to write (default: print it)")

    rep = sub.add_parser("report", help="(re)write and locate the HTML report of a run directory")
    rep.add_argument("run_dir", type=Path)

    mg = sub.add_parser(
        "merge", help="merge the --output folders of several shards: one folder, JUnit, summary page, index"
    )
    mg.add_argument(
        "outputs", nargs="+", type=Path, help="the shards' --output folders (each has batch.json)"
    )
    mg.add_argument("--into", "-o", type=Path, required=True, help="the merged folder")
    mg.add_argument("--junit", type=Path, default=None, help="the merged JUnit XML (default: INTO/junit.xml)")

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
        self.console.print(f"[bold]▶ {escape(name)}[/]  [dim]{self.total} steps → {escape(str(run_dir))}[/]")

    def step(self, rec: StepRecord) -> None:
        done = rec.index + 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * max(self.total - done, 0)
        how = f"[dim]{escape(rec.locator)}[/] " if rec.locator else ""
        self.console.print(
            f"  {_MARK.get(rec.outcome, '?')} \\[{done}/{self.total}] [bold]{rec.kind:<8}[/] {escape(rec.instruction[:60])}  "
            f"{how}[dim]{rec.timings.get('total', 0):.0f} ms · ETA {eta:.0f} s[/]",
            highlight=False,
        )
        if rec.error:
            self.console.print(f"      [red]{escape(rec.error)}[/]", highlight=False)


def _write_result(
    path: Path | None,
    res: TaskResult | None,
    *,
    status: str | None = None,
    error: str | None = None,
    exit_code: int | None = None,
) -> None:
    """The worker's answer to a batch run (``--result-json``), written whole (a long-lived worker's
    parent takes the file's appearance as the task's end)."""
    if path is None:
        return
    from pixelpilot.agent.memory import step_table

    data = {
        "exit_code": exit_code,
        "status": status or (res.status if res else "error"),
        "error": error if error is not None else (res.error if res else None),
        "run_dir": str(res.run_dir) if res and res.run_dir else None,
        "steps": [{"kind": s.kind, "outcome": s.outcome} for s in (res.steps if res else [])],
        "step_table": step_table(res.steps) if res else "",
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _serve(args: argparse.Namespace, console: Console) -> int:
    """A long-lived worker of a batch (``--keep-drivers``): task after task from stdin, one JSON line
    each (``{"task", "result", "rundir"}``), with one kept driver; ends at the end of its input, or when a
    task is interrupted (the batch is stopping)."""
    from pixelpilot.tasks.keeper import DriverKeeper

    keeper = DriverKeeper()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            job = json.loads(line)
            rc = _run_one(args, console, Path(job["task"]), Path(job["result"]), Path(job["rundir"]), keeper)
            console.file.flush()
            if rc == ExitCode.INTERRUPTED:
                return rc
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    finally:
        keeper.close()
    return ExitCode.PASSED


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    from pixelpilot.tasks.batch import collect_tasks, parse_shard, select_shard

    try:
        tasks = collect_tasks(args.tasks)
        shard = parse_shard(args.shard) if args.shard else None
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    if args.serve:
        return _serve(args, console)
    selected = select_shard(tasks, shard)
    batch = (
        len(args.tasks) > 1
        or any(Path(p).is_dir() for p in args.tasks)
        or args.workers > 1
        or args.executor != "local"
        or shard
        or args.junit
    )
    if batch:
        from pixelpilot.tasks.cli_batch import cmd_batch

        return cmd_batch(args, console, selected, total=len(tasks), shard=shard)
    return _run_one(args, console, selected[0], args.result_json, args.run_dir_file)


def _options(args: argparse.Namespace) -> RunOptions:
    return RunOptions(
        output=args.output,
        headed=args.headed or None,
        slow_mo=args.slowmo,
        model=args.model,
        model_name=args.model_name,
        driver=args.driver,
        cache=args.cache,
        timeout=args.timeout,
        step_timeout=args.step_timeout,
        model_timeout=args.model_timeout,
        secrets=args.secrets,
        yes=args.yes,
        browser_endpoint=args.browser_endpoint,
        ask=FileAsk(args.confirm_file) if args.confirm_file is not None else None,
    )


def _run_one(
    args: argparse.Namespace,
    console: Console,
    path: Path,
    result_json: Path | None,
    run_dir_file: Path | None,
    keeper: DriverKeeper | None = None,
) -> int:
    """One task file: its progress on the console, its answer in ``result_json`` (for a batch)."""
    opts = _options(args)
    progress = _Progress(console)
    try:

        def started(task: object, run_dir: Path) -> None:
            progress.start(task, run_dir)
            if run_dir_file is not None:  # for the console and batches: where this run is being written
                run_dir_file.write_text(str(run_dir.resolve()))

        res = run_task(path, opts, on_step=progress.step, on_start=started, keeper=keeper)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        _write_result(result_json, None, error=str(exc), exit_code=ExitCode.USAGE)
        return ExitCode.USAGE
    except (DriverError, ModelError, RunLogError) as exc:  # before the run could start, or its log broke
        label = "model" if isinstance(exc, ModelError) else "environment"
        console.print(f"[red]{label}:[/] {escape(str(exc))}", highlight=False)
        _write_result(result_json, None, error=str(exc), exit_code=ExitCode.ENVIRONMENT)
        return ExitCode.ENVIRONMENT
    except KeyboardInterrupt as exc:  # stopped before the run directory existed
        console.print(f"[yellow]interrupted[/] {escape(str(exc))}", highlight=False)
        _write_result(
            result_json,
            None,
            status="interrupted",
            error=str(exc) or "interrupted",
            exit_code=ExitCode.INTERRUPTED,
        )
        return ExitCode.INTERRUPTED
    _write_result(result_json, res, exit_code=res.exit_code)
    color = "green" if res.status == "passed" else "red"
    console.print(
        f"[{color}]{res.status.upper()}[/] {escape(res.task)} · report: "
        + escape(str(res.run_dir / "report.html") if res.run_dir else "-"),
        highlight=False,
    )
    if res.error and res.status != "passed":
        console.print(f"  [red]{escape(res.error.splitlines()[0])}[/]", highlight=False)
    return res.exit_code


def _cmd_report(args: argparse.Namespace, console: Console) -> int:
    from pixelpilot.agent.report import write_report
    from pixelpilot.agent.runlog import read_run

    try:
        run = read_run(args.run_dir)
    except FileNotFoundError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    out = write_report(args.run_dir)
    console.print(escape(f"{run.meta.get('task')} · {run.meta.get('status')} · {len(run.steps)} steps"))
    for p in run.problems:
        console.print(f"  [yellow]note:[/] {escape(p)}", highlight=False)
    console.print(escape(str(out)))
    return ExitCode.PASSED


def _cmd_schema(console: Console) -> int:
    from pixelpilot.tasks.spec import schema_json

    sys.stdout.write(schema_json() + "\n")
    return ExitCode.PASSED


def _cmd_doctor(console: Console) -> int:
    from pixelpilot.tasks.doctor import checks

    table = Table(title="pixelpilot doctor", show_lines=False)
    table.add_column("what")
    table.add_column("status")
    table.add_column("detail / fix")
    missing_required = False
    for c in checks():
        status = "[green]ok[/]" if c.ok else ("[red]missing[/]" if c.required else "[yellow]missing[/]")
        table.add_row(
            escape(c.name + ("" if c.required else " (optional)")),
            status,
            escape(c.detail if c.ok else c.fix),
        )
        missing_required |= c.required and not c.ok
    console.print(table)
    return ExitCode.ENVIRONMENT if missing_required else ExitCode.PASSED


def _cmd_ui(args: argparse.Namespace, console: Console) -> int:
    from pixelpilot.tasks.console import serve

    def ready(url: str) -> None:
        console.print(
            f"[bold]pixelpilot console[/] on [link={url}]{url}[/]  [dim]runs: {escape(str(args.runs))} · Ctrl-C stops[/]"
        )

    try:
        serve(
            args.runs,
            host=args.host,
            port=args.port,
            token=args.token,
            tasks=args.tasks,
            model=args.model,
            on_ready=ready,
        )
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    return ExitCode.PASSED


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from pixelpilot.agent.secrets import ScrubFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(ScrubFilter())  # no secret's value in a log line
    from pixelpilot.tasks.lifeline import install

    install()  # SIGTERM/SIGHUP end a run as interrupted; a worker stops when its parent dies
    try:
        return _dispatch(args, console)
    except KeyboardInterrupt as exc:
        console.print(f"[yellow]interrupted[/] {escape(str(exc))}", highlight=False)
        return ExitCode.INTERRUPTED
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    except (DriverError, ModelError, RunLogError) as exc:
        console.print(f"[red]environment:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.ENVIRONMENT
    except (
        PixelPilotError
    ) as exc:  # anything else of ours that ended a command (a picture that cannot be read ...)
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.FAILED
    except OSError as exc:  # a file or folder named on the command line that cannot be used
        where = f" ({exc.filename})" if exc.filename else ""
        console.print(f"[red]environment:[/] {escape((exc.strerror or str(exc)) + where)}", highlight=False)
        return ExitCode.ENVIRONMENT
    except Exception as exc:  # a bug of ours: a message, not a traceback (-v shows it)
        logging.getLogger(__name__).info("internal error", exc_info=True)
        console.print(
            f"[red]internal error:[/] {escape(f'{type(exc).__name__}: {exc}')} "
            "(run with -v for the traceback, and please report it)",
            highlight=False,
        )
        return ExitCode.FAILED


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    if args.command == "run":
        return _cmd_run(args, console)
    if args.command == "replay":
        from pixelpilot.tasks.replay_cmd import cmd_replay

        return cmd_replay(args, console)
    if args.command == "report":
        return _cmd_report(args, console)
    if args.command == "export":
        from pixelpilot.tasks.export import cmd_export

        return cmd_export(args, console)
    if args.command == "merge":
        from pixelpilot.tasks.cli_batch import cmd_merge

        return cmd_merge(args, console)
    if args.command == "parse-reply":
        from pixelpilot.tasks.parse_reply import cmd_parse_reply

        return cmd_parse_reply(args, console)
    if args.command == "ui":
        return _cmd_ui(args, console)
    if args.command == "schema":
        return _cmd_schema(console)
    if args.command == "doctor":
        return _cmd_doctor(console)
    return ExitCode.USAGE  # pragma: no cover - argparse requires a command


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
