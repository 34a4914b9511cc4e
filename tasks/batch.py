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
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

from .runner import ExitCode

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
    """Task files named, and every *.yaml / *.yml under the folders named (not inside hidden folders
    such as .venv, nor node_modules), sorted and de-duplicated."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix in TASK_SUFFIXES
                and not any(
                    part.startswith(".") or part == "node_modules" for part in f.relative_to(p).parts[:-1]
                )
            ]
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError("no such task file or folder", file=str(p))
    return sorted(dict.fromkeys(f.resolve() for f in found), key=lambda f: str(f))


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
    """pending, running, passed, failed, error."""
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

    @property
    def exit_code(self) -> int:
        codes = {o.exit_code for o in self.outcomes}
        for code in (ExitCode.ENVIRONMENT, ExitCode.USAGE, ExitCode.FAILED):
            if code in codes:
                return code
        if any(o.status != "passed" for o in self.outcomes):
            return ExitCode.FAILED
        return ExitCode.PASSED


def _progress_of(o: TaskOutcome, output: Path) -> None:
    """Read the task's run directory as its worker writes it (steps so far, total)."""
    if o.run_dir is None:
        for meta in output.glob("*/run.json"):
            try:
                data = json.loads(meta.read_text())
            except (OSError, ValueError):
                continue
            if data.get("task_file") and Path(data["task_file"]).resolve() == o.path:
                o.run_dir = meta.parent
                o.steps_total = int(data.get("total_steps") or 0)
                break
    if o.run_dir is not None:
        with contextlib.suppress(OSError):
            o.steps_done = sum(
                1 for line in (o.run_dir / "steps.jsonl").read_text().splitlines() if line.strip()
            )


def run_batch(
    tasks: Sequence[Path],
    *,
    output: Path,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    on_update: Callable[[list[TaskOutcome]], None] | None = None,
    poll: float = 0.25,
) -> BatchResult:
    """Run ``tasks`` with up to ``workers`` processes; ``on_update`` sees the outcomes as they change."""
    output.mkdir(parents=True, exist_ok=True)
    outcomes = [TaskOutcome(t) for t in tasks]
    pending = list(outcomes)
    running: dict[int, tuple[TaskOutcome, subprocess.Popen[str], Path, Any]] = {}
    start = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-batch-"))
    while pending or running:
        while pending and len(running) < max(1, workers):
            o = pending.pop(0)
            result_file = scratch / f"{len(running)}-{o.path.stem}-{time.monotonic_ns()}.json"
            log = (scratch / (result_file.stem + ".log")).open("w+")
            cmd = [
                sys.executable,
                "-m",
                "tasks.cli",
                "run",
                str(o.path),
                "--output",
                str(output),
                "--result-json",
                str(result_file),
                *extra_args,
            ]
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "160"}
            )
            o.status, o.started = "running", time.monotonic()
            running[proc.pid] = (o, proc, result_file, log)
        for pid, (o, proc, result_file, log) in list(running.items()):
            _progress_of(o, output)
            rc = proc.poll()
            if rc is None:
                continue
            del running[pid]
            o.ended, o.exit_code = time.monotonic(), rc
            log.seek(0)
            o.output = log.read()
            log.close()
            _finish(o, result_file, rc)
        if on_update is not None:
            on_update(outcomes)
        if running:
            time.sleep(poll)
    return BatchResult(outcomes, time.monotonic() - start)


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
                case, "failure", message=(o.error or "failed").splitlines()[0][:500], type="TaskFailed"
            )
            el.text = (o.error or "") + ("\n\n" + o.step_table if o.step_table else "")
        elif o.status != "passed":
            el = ET.SubElement(
                case, "error", message=(o.error or o.status).splitlines()[0][:500], type="TaskError"
            )
            el.text = (o.error or "") + "\n\n" + o.output[-4000:]
        out = ET.SubElement(case, "system-out")
        out.text = f"task file: {o.path}\nrun: {o.run_dir or '-'}\nreport: {(o.run_dir / 'report.html') if o.run_dir else '-'}"
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
