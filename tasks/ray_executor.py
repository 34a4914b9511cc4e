"""Ray as the executor of a batch (``pixelpilot run DIR --executor ray [--address auto]``).

Each task file runs as a Ray task on a node of the cluster: the tasks' common folder travels as the job's
``working_dir`` (Ray's own packaging: the task files and what they name beside them), the node runs
``pixelpilot run`` on it in a process of its own, and its run directory comes back as a tarball and is
unpacked into ``--output``, so JUnit, the summary and ``pixelpilot merge`` see what a local batch gives.
A task asks for one unit of the custom resource named after its driver (``browser``, ``desktop``,
``android``) when some node offers it (``ray start --resources '{"browser": 4}'``), else for a CPU.
A task whose process is killed on its node is an error with what it printed; Ctrl-C cancels every task
(each one's run is recorded as interrupted on its node and comes back) and the batch ends as interrupted. With
``--keep-drivers`` the tasks go to Ray actors instead, each keeping a long-lived worker and its driver on
its node (:class:`_NodeWorker`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.runlog import remember_passed
from pixelpilot.tasks.batch import BatchResult, TaskOutcome, _finish, _progress_of
from pixelpilot.tools.errors import DriverUnavailable

__all__ = ["run_batch_ray"]

DRIVER_RESOURCES = ("browser", "desktop", "android")


def _report(progress: Any, seen: TaskOutcome, marker: Path, task: str) -> None:
    """Tell the batch (its ``progress`` queue) how far the task's run is, when that changed: ``seen``
    reads the run as a local batch reads its workers' (:func:`~pixelpilot.tasks.batch._progress_of`)."""
    if progress is None:
        return
    before = (seen.steps_done, seen.steps_total)
    _progress_of(seen, marker)
    if (seen.steps_done, seen.steps_total) != before:
        with contextlib.suppress(Exception):  # progress is a nicety: a full or gone queue stops nothing
            progress.put_nowait((task, seen.steps_done, seen.steps_total))


def _run_on_node(task: str, args: Sequence[str], progress: Any = None) -> dict[str, Any]:
    """On a node, in the job's working_dir: run one task file; its answer and its run directory. Its
    steps so far go to ``progress`` (a Ray queue) as they are recorded."""
    work = Path(tempfile.mkdtemp(prefix="pixelpilot-ray-"))
    result, marker = work / "result.json", work / "rundir"
    cmd = [sys.executable, "-m", "pixelpilot.tasks.cli", "run", task, "--output", str(work / "runs")]
    cmd += ["--result-json", str(result), "--run-dir-file", str(marker), *args]
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True
    )
    cancelled = False
    seen = TaskOutcome(Path(task))
    try:
        while True:  # in short waits: Ray's cancel lands as an exception in Python code, not in a syscall
            try:
                output, _ = proc.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                _report(progress, seen, marker, task)
    except BaseException:  # cancelled: the run records the step in progress as interrupted, and comes back
        cancelled = True
        with contextlib.suppress(ProcessLookupError):  # SIGTERM: a Ray worker's children ignore SIGINT
            proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    answer: dict[str, Any] = {
        "rc": proc.returncode,
        "output": (output or "")[-20000:],
        "node": os.uname().nodename,
    }
    answer["cancelled"] = cancelled
    with contextlib.suppress(OSError, ValueError):
        answer["result"] = json.loads(result.read_text())
    _pack(answer, marker)
    return answer


def _pack(answer: dict[str, Any], marker: Path) -> None:
    with contextlib.suppress(OSError):
        run = Path(marker.read_text().strip())
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(run, arcname=run.name)
        answer["run"], answer["tar"] = run.name, buf.getvalue()


class _NodeWorker:
    """A Ray actor that keeps a driver (``--keep-drivers``): a long-lived ``pixelpilot run --serve``
    process on its node, fed one task after another."""

    def __init__(self, first_task: str, args: Sequence[str], progress: Any = None) -> None:
        self.progress = progress
        self.work = Path(tempfile.mkdtemp(prefix="pixelpilot-ray-"))
        self.log = (self.work / "worker.log").open("w+")
        cmd = [sys.executable, "-m", "pixelpilot.tasks.cli", "run", first_task, "--serve"]
        cmd += ["--output", str(self.work / "runs"), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "160"},
            start_new_session=True,
        )
        self.n = 0

    def run(self, task: str) -> dict[str, Any]:
        self.n += 1
        result, marker = self.work / f"{self.n}.json", self.work / f"{self.n}.rundir"
        self.log.seek(0, os.SEEK_END)
        start = self.log.tell()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(
                json.dumps({"task": task, "result": str(result), "rundir": str(marker)}) + "\n"
            )
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: said below
        seen = TaskOutcome(Path(task))
        while not result.exists() and self.proc.poll() is None:
            time.sleep(0.1)
            _report(self.progress, seen, marker, task)
        self.log.seek(start)
        answer: dict[str, Any] = {
            "output": self.log.read()[-20000:],
            "node": os.uname().nodename,
            "pid": self.proc.pid,
        }
        if result.exists():
            data = json.loads(result.read_text())
            answer["result"], answer["rc"] = data, data.get("exit_code", 0)
        else:
            answer["rc"] = self.proc.returncode
        _pack(answer, marker)
        return answer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Ctrl-C of the batch (called beside a running ``run``: the actor takes two calls at once): the
        worker records its run as interrupted and ends, and ``run`` returns that run."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def _unpack(answer: dict[str, Any], output: Path) -> Path | None:
    """The run directory a node sent, under ``output`` (a fresh name if one is taken)."""
    name = answer.get("run")
    data = answer.get("tar")
    if not isinstance(name, str) or not isinstance(data, bytes) or "/" in name or name in (".", ".."):
        return None
    with tempfile.TemporaryDirectory(dir=output, prefix=".unpack-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")  # no links out, no absolute paths
        target, n = output / name, 1
        while target.exists():
            n += 1
            target = output / f"{name}-{n}"
        (Path(tmp) / name).rename(target)
    return target


def _driver_of(path: Path, override: str | None) -> str:
    if override:
        return override
    from pixelpilot.tasks.spec import load_task

    try:
        return load_task(path).driver_kind
    except ConfigError:
        return "browser"  # its node reports the problem


def run_batch_ray(
    tasks: Sequence[Path],
    *,
    output: Path,
    address: str | None = None,
    workers: int | None = None,
    extra_args: Sequence[str] = (),
    driver: str | None = None,
    retries: int = 0,
    keep_drivers: bool = False,
    on_update: Callable[[list[TaskOutcome]], None] | None = None,
    poll: float = 0.5,
) -> BatchResult:
    """Run ``tasks`` on a Ray cluster (``address``: ``auto``, ``host:port``, ``ray://…``; none: a local
    one started for this batch), at most ``workers`` at once (default: as many as the cluster can).
    ``keep_drivers``: the tasks run on Ray actors, each keeping a long-lived worker (and its driver) on
    its node, as ``--keep-drivers`` does here; a dead actor fails its task and a new one takes the next."""
    try:
        import ray
    except ImportError as exc:
        raise DriverUnavailable("--executor ray needs Ray", install="pip install 'pixelpilot[ray]'") from exc
    output.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.commonpath([str(t.parent) for t in tasks])) if tasks else Path.cwd()
    outcomes = [TaskOutcome(t) for t in tasks]
    result = BatchResult(outcomes)
    start = time.monotonic()
    try:
        ray.init(
            address=address,
            runtime_env={"working_dir": str(root), "excludes": [".git", ".venv*", "node_modules", "runs"]},
            log_to_driver=False,
            include_dashboard=False if address is None else None,
            configure_logging=False,
        )
    except Exception as exc:  # noqa: BLE001 - Ray says why in its own exception types
        raise DriverUnavailable(
            f"cannot start or reach the Ray cluster{f' at {address}' if address else ''}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            install="start one with `ray start --head --resources '{\"browser\": 2}'`, or leave --address out",
        ) from exc
    try:
        from ray.util.queue import Empty, Queue

        offered = ray.cluster_resources()
        progress = Queue(actor_options={"num_cpus": 0})  # the nodes' step counts, for the live table
        by_task = {str(o.path.relative_to(root)): o for o in outcomes}
        remote = ray.remote(max_retries=0)(_run_on_node)
        actor_class = ray.remote(max_restarts=0)(_NodeWorker)
        limit = workers or max(1, int(offered.get("CPU", 1)))
        pending = list(outcomes)
        running: dict[Any, TaskOutcome] = {}
        idle: dict[str, list[Any]] = {}  # kept drivers: actors waiting for a task, by driver kind
        busy: dict[Any, tuple[str, Any]] = {}
        actors = 0
        try:
            while pending or running:
                while pending and len(running) < limit:
                    o = pending.pop(0)
                    kind = _driver_of(o.path, driver)
                    need = {"resources": {kind: 1}, "num_cpus": 0} if offered.get(kind) else {"num_cpus": 1}
                    task = str(o.path.relative_to(root))
                    if keep_drivers:
                        if not idle.get(kind):
                            if actors >= limit:  # an idle actor of another kind gives its place
                                other = next(k for k, v in idle.items() if v)
                                old = idle[other].pop()
                                with contextlib.suppress(Exception):
                                    ray.get(old.close.remote(), timeout=60)
                                ray.kill(old)
                                actors -= 1
                            idle.setdefault(kind, []).append(
                                actor_class.options(max_concurrency=2, **need).remote(
                                    task, list(extra_args), progress
                                )
                            )
                            actors += 1
                        actor = idle[kind].pop()
                        ref = actor.run.remote(task)
                        busy[ref] = (kind, actor)
                    else:
                        ref = remote.options(**need).remote(task, list(extra_args), progress)
                    o.status, o.started, o.ended, o.run_dir = "running", time.monotonic(), None, None
                    running[ref] = o
                if on_update is not None:
                    on_update(outcomes)
                done, _ = ray.wait(list(running), num_returns=1, timeout=poll)
                while True:  # how far each running task is, as its node said
                    try:
                        name, steps, total = progress.get_nowait()
                    except Empty:
                        break
                    told = by_task.get(name)
                    if told is not None and told.status == "running":
                        told.steps_done, told.steps_total = steps, total
                for ref in done:
                    o = running.pop(ref)
                    _settle(o, ref, ray, output)
                    if ref in busy:
                        kind, actor = busy.pop(ref)
                        try:
                            fine = ray.get(actor.alive.remote(), timeout=30)
                        except Exception:  # noqa: BLE001 - the actor is gone
                            fine = False
                        if fine:
                            idle.setdefault(kind, []).append(actor)
                        else:
                            ray.kill(actor)
                            actors -= 1
                    if o.status in ("failed", "error") and len(o.attempts) < retries:
                        o.attempts.append(o.error or o.status)
                        o.status = "pending"
                        pending.append(o)
        except KeyboardInterrupt:
            result.interrupted = True
            for ref in running:
                if ref in busy:  # a kept driver's worker: told to stop beside its running task
                    busy[ref][1].stop.remote()
                else:
                    ray.cancel(ref)
            for ref, o in running.items():  # each run, recorded as interrupted on its node, comes back
                _settle(o, ref, ray, output, timeout=60)
                if o.status != "passed":
                    o.status, o.error = "interrupted", "cancelled: the batch was interrupted"
            for o in pending:
                o.status, o.error = "interrupted", "not started: the batch was interrupted"
        if on_update is not None:
            on_update(outcomes)
        for actor in [a for v in idle.values() for a in v] + [a for _, a in busy.values()]:
            with contextlib.suppress(Exception):
                ray.get(actor.close.remote(), timeout=60)
    finally:
        ray.shutdown()
    result.seconds = time.monotonic() - start
    return result


def _settle(o: TaskOutcome, ref: Any, ray: Any, output: Path, *, timeout: float | None = None) -> None:
    """A finished Ray task's outcome: its run directory unpacked, its answer read like a local worker's."""
    o.ended = time.monotonic()
    try:
        answer = ray.get(ref, timeout=timeout)
    except Exception as exc:  # the worker process or its node died under it
        o.status, o.exit_code = "error", -1
        o.error = f"its Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return
    o.output = str(answer.get("output") or "")
    o.run_dir = _unpack(answer, output)
    rc = int(answer.get("rc", -1))
    o.exit_code = rc
    with tempfile.TemporaryDirectory() as tmp:  # _finish reads the worker's answer from a file
        answer_file = Path(tmp) / "result.json"
        if answer.get("result") is not None:
            data = dict(answer["result"])
            if o.run_dir is not None:
                data["run_dir"] = str(o.run_dir)
            answer_file.write_text(json.dumps(data))
        _finish(o, answer_file, rc)
    if o.run_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            o.steps_done = sum(
                1 for line in (o.run_dir / "steps.jsonl").read_text().splitlines() if line.strip()
            )
    if o.status == "passed" and o.run_dir is not None:  # the merged output's index of passing runs
        with contextlib.suppress(OSError, ValueError, KeyError):
            task = json.loads((o.run_dir / "run.json").read_text())["task"]
            remember_passed(output, str(task), o.run_dir.name)
    if o.status == "error" and answer.get("node"):
        o.error = f"{o.error} (on node {answer['node']})"
