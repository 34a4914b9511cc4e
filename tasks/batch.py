"""Many task files at once: collection, deterministic shards, parallel workers, JUnit XML.

Each task runs in its own process (one driver each): a worker that crashes fails its task, not the run.
Shards split the sorted task list round-robin, so ``--shard 1/3``, ``2/3`` and ``3/3`` together run every
task exactly once, on any machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.secrets import scrub
from pixelpilot.tasks.lifeline import Worker, spawn
from pixelpilot.tasks.runner import ExitCode

__all__ = [
    "BatchResult",
    "TaskOutcome",
    "collect_tasks",
    "parse_shard",
    "run_batch",
    "select_shard",
    "write_junit",
]

TASK_SUFFIXES = (".yaml", ".yml")


def collect_tasks(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Task files named, and the task files under the folders named: *.yaml / *.yml files with a
    top-level ``steps:`` (a docker-compose file or a CI config beside them is not a task), not inside
    hidden folders such as .venv, nor node_modules; sorted and de-duplicated. A folder that holds no
    task file is an error, not an empty green run."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            here = [
                f
                for f in p.rglob("*")
                if f.suffix in TASK_SUFFIXES
                and not any(
                    part.startswith(".") or part == "node_modules" for part in f.relative_to(p).parts[:-1]
                )
                and f.is_file()
                and _looks_like_a_task(f)
            ]
            if not here:
                raise ConfigError("no task files here (*.yaml with a top-level steps:)", file=str(p))
            found += here
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError("no such task file or folder", file=str(p))
    return sorted(dict.fromkeys(f.resolve() for f in found), key=lambda f: str(f))


_STEPS_KEY = re.compile(rb"^steps\s*:", re.MULTILINE)


def _looks_like_a_task(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(MAX_SCAN)
    except OSError:
        return False
    return _STEPS_KEY.search(head) is not None


MAX_SCAN = 1 << 20
"""How much of a YAML file is read to decide whether it is a task file."""


def parse_shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"--shard takes i/n with 1 ≤ i ≤ n, e.g. 2/3 (got {text!r})")
    return int(m.group(1)), int(m.group(2))


def select_shard(tasks: Sequence[Path], shard: tuple[int, int] | None) -> list[Path]:
    if shard is None:
        return list(tasks)
    i, n = shard
    return [t for k, t in enumerate(tasks) if k % n == i - 1]


@dataclass
class TaskOutcome:
    path: Path
    status: str = "pending"
    """pending, running, passed, failed, error, interrupted."""
    exit_code: int | None = None
    run_dir: Path | None = None
    error: str | None = None
    steps_done: int = 0
    steps_total: int = 0
    started: float | None = None
    ended: float | None = None
    output: str = ""
    step_table: str = ""

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


@dataclass
class BatchResult:
    outcomes: list[TaskOutcome] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    """Ctrl-C or SIGTERM stopped the batch."""

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        codes = {o.exit_code for o in self.outcomes}
        for code in (ExitCode.ENVIRONMENT, ExitCode.USAGE, ExitCode.FAILED):
            if code in codes:
                return code
        if any(o.status != "passed" for o in self.outcomes):
            return ExitCode.FAILED
        return ExitCode.PASSED


def _progress_of(o: TaskOutcome, marker: Path) -> None:
    """Read the task's run directory as its worker writes it (steps so far, total). The worker names
    its run directory in ``marker`` (never a run of an earlier invocation)."""
    if o.run_dir is None:
        try:
            run = Path(marker.read_text().strip())
            data = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            return
        o.run_dir = run
        o.steps_total = int(data.get("total_steps") or 0) if isinstance(data, dict) else 0
    with contextlib.suppress(OSError):
        o.steps_done = sum(1 for line in (o.run_dir / "steps.jsonl").read_text().splitlines() if line.strip())


def run_batch(
    tasks: Sequence[Path],
    *,
    output: Path,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    on_update: Callable[[list[TaskOutcome]], None] | None = None,
    poll: float = 0.25,
    grace: float = 30.0,
) -> BatchResult:
    """Run ``tasks`` with up to ``workers`` processes; ``on_update`` sees the outcomes as they change.

    Ctrl-C or SIGTERM stops the batch: running workers are told to stop (each records its run as
    interrupted and closes its browser, within ``grace`` seconds), tasks not started are marked
    ``interrupted``, and the result says so. A worker dies with this process even on SIGKILL."""
    if workers < 1:
        raise ConfigError(f"--workers takes a number ≥ 1 (got {workers})")
    output.mkdir(parents=True, exist_ok=True)
    outcomes = [TaskOutcome(t) for t in tasks]
    pending = list(outcomes)
    running: dict[int, tuple[TaskOutcome, Worker, Path, Any]] = {}
    start = time.monotonic()
    result = BatchResult(outcomes)
    with tempfile.TemporaryDirectory(prefix="pixelpilot-batch-") as tmp:
        scratch = Path(tmp)
        try:
            while pending or running:
                while pending and len(running) < workers:
                    o = pending.pop(0)
                    stem = f"{len(outcomes) - len(pending)}-{o.path.stem}"
                    log = (scratch / f"{stem}.log").open("w+")
                    cmd = [
                        sys.executable,
                        "-m",
                        "pixelpilot.tasks.cli",
                        "run",
                        str(o.path),
                        "--output",
                        str(output),
                        "--result-json",
                        str(scratch / f"{stem}.json"),
                        "--run-dir-file",
                        str(scratch / f"{stem}.rundir"),
                        *extra_args,
                    ]
                    w = spawn(
                        cmd,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        text=True,
                        env={**os.environ, "COLUMNS": "160"},
                    )
                    o.status, o.started = "running", time.monotonic()
                    running[w.proc.pid] = (o, w, scratch / stem, log)
                _reap(running, poll_only=True)
                if on_update is not None:
                    on_update(outcomes)
                if running:
                    time.sleep(poll)
        except KeyboardInterrupt:
            result.interrupted = True
            for _, w, _, _ in running.values():
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while running and time.monotonic() < deadline:
                _reap(running, poll_only=True)
                time.sleep(0.1)
            for _, w, _, _ in running.values():  # past the grace: the worker's whole session
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
            _reap(running, poll_only=False)
            for o in pending:
                o.status, o.error = "interrupted", "not started: the batch was interrupted"
            if on_update is not None:
                on_update(outcomes)
    result.seconds = time.monotonic() - start
    return result


def _reap(running: dict[int, tuple[TaskOutcome, Worker, Path, Any]], *, poll_only: bool) -> None:
    """Collect the workers that ended (all of them, waiting, unless ``poll_only``)."""
    for pid, (o, w, stem, log) in list(running.items()):
        _progress_of(o, stem.with_suffix(".rundir"))
        rc = w.proc.poll() if poll_only else w.proc.wait()
        if rc is None:
            continue
        del running[pid]
        w.release()
        o.ended, o.exit_code = time.monotonic(), rc
        log.seek(0)
        o.output = log.read()
        log.close()
        _progress_of(o, stem.with_suffix(".rundir"))
        _finish(o, stem.with_suffix(".json"), rc)


def _finish(o: TaskOutcome, result_file: Path, rc: int) -> None:
    try:
        data = json.loads(result_file.read_text())
    except (OSError, ValueError):
        data = None
    if data is None:  # the worker died before it could say anything
        o.status = "error"
        last = [line for line in o.output.strip().splitlines() if line.strip()][-3:]
        o.error = f"the worker process ended with exit code {rc} without a result" + (
            ": " + " / ".join(last) if last else ""
        )
        return
    o.status = data.get("status", "error")
    o.error = data.get("error")
    o.run_dir = Path(data["run_dir"]) if data.get("run_dir") else o.run_dir
    o.steps_done = len(data.get("steps", []))
    o.step_table = data.get("step_table", "")
    if rc in (ExitCode.USAGE, ExitCode.ENVIRONMENT) and o.status == "passed":
        o.status = "error"


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Text as JUnit XML may hold it: no terminal colours (FORCE_COLOR), no characters XML forbids."""
    return _NOT_XML.sub("", _ANSI.sub("", scrub(text)))


def write_junit(result: BatchResult, path: Path, *, suite: str = "pixelpilot") -> None:
    """JUnit XML in the common (Jenkins/Surefire) form: testsuites > testsuite > testcase."""
    fails = sum(o.status == "failed" for o in result.outcomes)
    errors = sum(o.status not in ("passed", "failed") for o in result.outcomes)
    root = ET.Element(
        "testsuites",
        name=suite,
        tests=str(len(result.outcomes)),
        failures=str(fails),
        errors=str(errors),
        time=f"{result.seconds:.3f}",
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(result.outcomes)),
        failures=str(fails),
        errors=str(errors),
        skipped="0",
        time=f"{result.seconds:.3f}",
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S"),
    )
    for o in result.outcomes:
        rel = o.path.name.split(".")[0]
        case = ET.SubElement(
            ts,
            "testcase",
            name=rel,
            classname=f"pixelpilot.{o.path.parent.name or 'tasks'}",
            time=f"{o.seconds:.3f}",
        )
        if o.status == "failed":
            el = ET.SubElement(
                case,
                "failure",
                message=_xml_text((o.error or "failed").splitlines()[0][:500]),
                type="TaskFailed",
            )
            el.text = _xml_text((o.error or "") + ("\n\n" + o.step_table if o.step_table else ""))
        elif o.status != "passed":
            el = ET.SubElement(
                case,
                "error",
                message=_xml_text((o.error or o.status).splitlines()[0][:500]),
                type="TaskError",
            )
            el.text = _xml_text((o.error or "") + "\n\n" + o.output[-4000:])
        out = ET.SubElement(case, "system-out")
        report = o.run_dir / "report.html" if o.run_dir and (o.run_dir / "report.html").is_file() else None
        out.text = _xml_text(f"task file: {o.path}\nrun: {o.run_dir or '-'}\nreport: {report or '-'}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
