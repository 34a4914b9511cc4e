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
from collections.abc import Callable, Mapping, Sequence
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


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``i/n``, or ``auto``: the shard a Kubernetes Indexed Job (``JOB_COMPLETION_INDEX``, 0-based, with
    ``JOB_COMPLETION_COUNT`` set from the Job's ``completions``) or a CI matrix (``CI_NODE_INDEX``/
    ``CI_NODE_TOTAL``, 1-based, as GitLab's ``parallel:`` sets them) says this machine runs."""
    env = os.environ if env is None else env
    if text.strip() == "auto":
        for index, count, first in (
            ("JOB_COMPLETION_INDEX", "JOB_COMPLETION_COUNT", 0),
            ("CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
        ):
            if env.get(index, "").strip() and env.get(count, "").strip():
                try:
                    i, n = int(env[index]) + 1 - first, int(env[count])
                except ValueError:
                    raise ConfigError(
                        f"--shard auto: {index}={env[index]!r}, {count}={env[count]!r} are not numbers"
                    ) from None
                if not 1 <= i <= n:
                    raise ConfigError(f"--shard auto: {index}={env[index]} is outside {count}={env[count]}")
                return i, n
        raise ConfigError(
            "--shard auto needs JOB_COMPLETION_INDEX and JOB_COMPLETION_COUNT (a Kubernetes Indexed Job: set the "
            "count from the Job's completions) or CI_NODE_INDEX and CI_NODE_TOTAL"
        )
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
    attempts: list[str] = field(default_factory=list)
    """The errors of the earlier tries of a task run again (``--retries``)."""

    @property
    def flaky(self) -> bool:
        """Passed, but only after failing."""
        return self.status == "passed" and bool(self.attempts)

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


@dataclass
class _Slot:
    """One worker: a process per task, or (``keep_drivers``) one long-lived process fed task after task."""

    worker: Worker | None = None
    log: Any = None
    outcome: TaskOutcome | None = None
    stem: Path | None = None
    offset: int = 0
    """Where the current task's output begins in a long-lived worker's log."""
    deadline: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    """What this worker's processes get in their environment (its device)."""


def task_limit(path: Path, timeout: float | None) -> float | None:
    """Seconds a task may run (``--timeout``, else the file's ``timeout:``/``settings.run_timeout``)."""
    if timeout is not None:
        return timeout
    from pixelpilot.tasks.spec import load_task

    try:
        task = load_task(path)
    except ConfigError:
        return None  # its worker reports the problem
    return task.timeout or task.settings.run_timeout


def run_batch(
    tasks: Sequence[Path],
    *,
    output: Path,
    workers: int = 1,
    extra_args: Sequence[str] = (),
    on_update: Callable[[list[TaskOutcome]], None] | None = None,
    poll: float = 0.25,
    grace: float = 30.0,
    keep_drivers: bool = False,
    retries: int = 0,
    timeout: float | None = None,
    devices: Sequence[str] = (),
) -> BatchResult:
    """Run ``tasks`` with up to ``workers`` processes; ``on_update`` sees the outcomes as they change.

    ``keep_drivers``: each worker is one long-lived process that keeps its driver across tasks (see
    :mod:`pixelpilot.tasks.keeper`); one that dies fails its task and a new one takes the next.
    ``retries``: a task that failed runs again, up to that many times (a later pass is flaky). A task
    still running ``grace`` seconds past its time limit (``timeout``, else its file's) has its worker
    killed and is an error. ``devices``: Android serials, one per worker and never shared (each
    worker's ``$ANDROID_SERIAL``); there are no more workers than devices.

    Ctrl-C or SIGTERM stops the batch: running workers are told to stop (each records its run as
    interrupted and closes its browser, within ``grace`` seconds), tasks not started are marked
    ``interrupted``, and the result says so. A worker dies with this process even on SIGKILL."""
    if workers < 1:
        raise ConfigError(f"--workers takes a number ≥ 1 (got {workers})")
    if retries < 0:
        raise ConfigError(f"--retries takes a number ≥ 0 (got {retries})")
    output.mkdir(parents=True, exist_ok=True)
    outcomes = [TaskOutcome(t) for t in tasks]
    pending = list(outcomes)
    if devices:
        workers = min(workers, len(devices))
    slots = [_Slot() for _ in range(min(workers, max(len(outcomes), 1)))]
    for slot, serial in zip(slots, devices, strict=False):
        slot.env["ANDROID_SERIAL"] = serial
    start = time.monotonic()
    result = BatchResult(outcomes)
    counter = 0
    with tempfile.TemporaryDirectory(prefix="pixelpilot-batch-") as tmp:
        scratch = Path(tmp)

        def base_cmd(*task: str) -> list[str]:
            return [sys.executable, "-m", "pixelpilot.tasks.cli", "run", *task, "--output", str(output)]

        def begin(slot: _Slot, o: TaskOutcome) -> None:
            nonlocal counter
            counter += 1
            stem = scratch / f"{counter}-{o.path.stem}"
            files = [
                "--result-json",
                str(stem.with_suffix(".json")),
                "--run-dir-file",
                str(stem.with_suffix(".rundir")),
            ]
            if keep_drivers:
                if slot.worker is None or slot.worker.proc.poll() is not None:
                    slot.log = (scratch / f"worker-{counter}.log").open("w+")
                    slot.worker = spawn(
                        [*base_cmd(str(o.path)), "--serve", *extra_args],
                        stdin=subprocess.PIPE,
                        stdout=slot.log,
                        stderr=subprocess.STDOUT,
                        text=True,
                        env={**os.environ, **slot.env, "COLUMNS": "160"},
                    )
                slot.log.seek(0, os.SEEK_END)
                slot.offset = slot.log.tell()
                job = {"task": str(o.path), "result": files[1], "rundir": files[3]}
                assert slot.worker.proc.stdin is not None
                slot.worker.proc.stdin.write(json.dumps(job) + "\n")
                slot.worker.proc.stdin.flush()
            else:
                slot.log, slot.offset = (scratch / f"{stem.name}.log").open("w+"), 0
                slot.worker = spawn(
                    [*base_cmd(str(o.path)), *files, *extra_args],
                    stdout=slot.log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env={**os.environ, **slot.env, "COLUMNS": "160"},
                )
            limit = task_limit(o.path, timeout)
            o.status, o.started, o.ended, o.run_dir = "running", time.monotonic(), None, None
            o.steps_done = 0
            slot.outcome, slot.stem = o, stem
            slot.deadline = o.started + limit + grace if limit else None

        def check(slot: _Slot, *, wait: bool = False) -> None:
            """Finish the slot's task if it ended (its process, or its answer from a long-lived one)."""
            o, stem, w = slot.outcome, slot.stem, slot.worker
            if o is None or stem is None or w is None:
                return
            _progress_of(o, stem.with_suffix(".rundir"))
            rc = w.proc.wait() if wait else w.proc.poll()
            answered = keep_drivers and stem.with_suffix(".json").exists()
            late = slot.deadline is not None and time.monotonic() > slot.deadline
            if rc is None and not answered and not late:
                return
            if late and rc is None and not answered:  # it ignores its own time limit: stop its worker
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(w.proc.pid, signal.SIGKILL)
                rc = w.proc.wait()
            slot.log.seek(slot.offset)
            o.output = slot.log.read()
            o.ended = time.monotonic()
            _progress_of(o, stem.with_suffix(".rundir"))
            code = rc  # the task's exit code: its process's, or what the long-lived worker answered
            if answered:
                data = json.loads(stem.with_suffix(".json").read_text())
                code = data["exit_code"] if isinstance(data.get("exit_code"), int) else rc
            o.exit_code = code
            _finish(o, stem.with_suffix(".json"), code if code is not None else -1)
            if late and not answered:
                o.status = "error"
                o.error = f"ran past its time limit by {grace:g} s and did not stop: its worker was killed"
            slot.outcome = slot.stem = None
            if not keep_drivers or rc is not None:  # the process is done: a new one for the next task
                w.release()
                slot.worker = None
                slot.log.close()
            if o.status in ("failed", "error") and len(o.attempts) < retries:
                o.attempts.append(o.error or o.status)
                o.status = "pending"
                pending.append(o)

        try:
            while pending or any(s.outcome for s in slots):
                for slot in slots:
                    if slot.outcome is None and pending:
                        begin(slot, pending.pop(0))
                for slot in slots:
                    check(slot)
                if on_update is not None:
                    on_update(outcomes)
                if any(s.outcome for s in slots):
                    time.sleep(poll)
        except KeyboardInterrupt:
            result.interrupted = True
            for slot in slots:
                if slot.worker is not None and slot.worker.proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        slot.worker.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while any(s.outcome for s in slots) and time.monotonic() < deadline:
                for slot in slots:
                    check(slot)
                time.sleep(0.1)
            for slot in slots:
                if slot.worker is not None and slot.worker.proc.poll() is None and slot.outcome is not None:
                    with contextlib.suppress(ProcessLookupError):  # past the grace: its whole session
                        os.killpg(slot.worker.proc.pid, signal.SIGKILL)
                check(slot, wait=True)
            for o in pending:
                o.status, o.error = "interrupted", "not started: the batch was interrupted"
            if on_update is not None:
                on_update(outcomes)
        finally:
            for slot in slots:  # long-lived workers: the end of their input ends them
                if slot.worker is not None:
                    with contextlib.suppress(OSError):
                        if slot.worker.proc.stdin is not None:
                            slot.worker.proc.stdin.close()
                    try:
                        slot.worker.proc.wait(grace)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(slot.worker.proc.pid, signal.SIGKILL)
                        slot.worker.proc.wait()
                    slot.worker.release()
                    slot.log.close()
    result.seconds = time.monotonic() - start
    return result


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
        for tried in o.attempts if o.status == "passed" else ():  # Surefire's mark of a flaky test
            el = ET.SubElement(
                case, "flakyFailure", message=_xml_text(tried.splitlines()[0][:500]), type="TaskFailed"
            )
            el.text = _xml_text(tried)
        out = ET.SubElement(case, "system-out")
        report = o.run_dir / "report.html" if o.run_dir and (o.run_dir / "report.html").is_file() else None
        tries = (
            f"\ntries: {len(o.attempts) + 1} (flaky: passed on a retry)"
            if o.flaky
            else (f"\ntries: {len(o.attempts) + 1}" if o.attempts else "")
        )
        out.text = _xml_text(f"task file: {o.path}\nrun: {o.run_dir or '-'}\nreport: {report or '-'}{tries}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
