"""Runs launched from the console: one ``pixelpilot run`` process each, watched through its run
directory (``steps.jsonl`` is flushed step by step), stopped with SIGINT so the run log ends cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.tasks.asking import answer_question, pending_question
from pixelpilot.tasks.lifeline import Worker, spawn

__all__ = ["Job", "JobManager", "step_summary"]


def step_summary(step: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What the console shows of one step (and what the events stream carries)."""
    model = step.get("model") or {}
    frame = step.get("frame")
    return {
        "index": step.get("index"),
        "kind": step.get("kind"),
        "instruction": step.get("instruction"),
        "locator": step.get("locator"),
        "outcome": step.get("outcome"),
        "ms": (step.get("timings") or {}).get("total"),
        "model_ms": (step.get("timings") or {}).get("model"),
        "point": step.get("point"),
        "error": step.get("error"),
        "raw": model.get("raw"),
        "frame": f"/runs/{run_id}/{frame}" if frame else None,
    }


@dataclass
class Job:
    id: str
    task_file: str
    driver: str | None
    model: str | None
    headless: bool
    proc: subprocess.Popen[bytes]
    marker: Path
    log: Path
    started: float = field(default_factory=time.time)
    ended: float | None = None
    worker: Worker | None = None
    run_dir: Path | None = None
    stop_requested: bool = False

    @property
    def asking(self) -> Path:
        """Where the run asks a person to confirm an action (see :mod:`pixelpilot.tasks.asking`)."""
        return self.marker.with_suffix(".confirm")

    def question(self) -> dict[str, Any] | None:
        """The confirmation the run is waiting on, if any."""
        return pending_question(self.asking) if self.exit_code is None else None

    def answer(self, n: int, allow: bool) -> bool:
        return answer_question(self.asking, n, allow)

    @property
    def exit_code(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.worker is not None:
            self.worker.release()  # its lifeline is no longer needed
        return code

    def find_run(self) -> Path | None:
        if self.run_dir is None and self.marker.exists():
            text = self.marker.read_text().strip()
            if text:
                self.run_dir = Path(text)
        return self.run_dir

    def run_meta(self) -> dict[str, Any]:
        run = self.find_run()
        if run is None:
            return {}
        try:
            return dict(json.loads((run / "run.json").read_text("utf-8")))
        except (OSError, ValueError):
            return {}

    def status(self, meta: dict[str, Any] | None = None) -> str:
        meta = self.run_meta() if meta is None else meta
        if self.exit_code is None:
            return "running" if meta else "starting"
        if meta.get("status") and meta["status"] != "running":
            return str(meta["status"])
        return "error"

    def describe(self) -> dict[str, Any]:
        run, meta = self.find_run(), self.run_meta()  # run.json read once
        out = {
            "id": self.id,
            "task_file": self.task_file,
            "driver": self.driver,
            "model": self.model,
            "headless": self.headless,
            "status": self.status(meta),
            "run_id": run.name if run else None,
            "exit_code": self.exit_code,
            "started": self.started,
            "question": self.question(),
        }
        if self.exit_code is not None and out["status"] == "error" and not meta:
            out["output"] = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return out


class JobManager:
    def __init__(self, runs: Path) -> None:
        self.runs = runs
        self.jobs: dict[str, Job] = {}
        self._scratch = runs / ".pixelpilot" / "jobs"  # markers and logs stay inside the runs folder
        self._scratch.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def launch(self, task_file: Path, *, driver: str | None, model: str | None, headless: bool) -> Job:
        job_id = uuid.uuid4().hex[:12]
        marker = self._scratch / f"{job_id}.rundir"
        log = self._scratch / f"{job_id}.log"
        cmd = [
            sys.executable,
            "-m",
            "pixelpilot.tasks.cli",
            "run",
            str(task_file),
            "--output",
            str(self.runs),
        ]
        cmd += ["--run-dir-file", str(marker), "--confirm-file", str(marker.with_suffix(".confirm"))]
        if driver:
            cmd += ["--driver", driver]
        if model:
            cmd += ["--model", model]
        if not headless:
            cmd += ["--headed"]
        with log.open("wb") as out:  # a worker that stops (interrupted) if the console dies
            worker = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "140"})
        job = Job(job_id, str(task_file), driver, model, headless, worker.proc, marker, log, worker=worker)
        with self._lock:
            self.jobs[job_id] = job
        return job

    def stop(self, job: Job, *, grace: float = 15.0) -> None:
        """Ctrl-C for the run: it records the step in progress as interrupted and closes its log."""
        job.stop_requested = True
        if job.proc.poll() is None:
            job.proc.send_signal(signal.SIGINT)
            try:
                job.proc.wait(grace)
            except subprocess.TimeoutExpired:
                job.proc.terminate()
                job.proc.wait(5)
        if job.worker is not None:
            job.worker.release()
        job.ended = time.time()

    def events(self, job: Job, *, poll: float = 0.2, timeout: float = 3600) -> Iterator[dict[str, Any]]:
        """Steps as they are written, then the end of the run."""
        offset = 0
        sent_start = False
        asked: int | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = job.find_run()
            if run is not None:
                if not sent_start:
                    sent_start = True
                    yield {"type": "start", "run_id": run.name, **job.run_meta()}
                try:
                    with (run / "steps.jsonl").open("rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                except OSError:
                    chunk = b""
                while b"\n" in chunk:  # only whole lines: a step being written is not read half
                    line, chunk = chunk.split(b"\n", 1)
                    offset += len(line) + 1
                    if line.strip():
                        try:
                            yield {"type": "step", **step_summary(json.loads(line), run.name)}
                        except ValueError:
                            continue
            question = job.question()
            if question is not None and question.get("n") != asked:
                asked = question.get("n")
                yield {"type": "confirm", **question}
            if job.exit_code is not None and (run is None or offset >= _size(run / "steps.jsonl")):
                yield {"type": "end", **job.describe(), "error": job.run_meta().get("error")}
                return
            time.sleep(poll)
        yield {"type": "end", **job.describe(), "error": "the console stopped watching (timeout)"}

    def close(self) -> None:
        for job in list(self.jobs.values()):
            if job.proc.poll() is None:
                self.stop(job, grace=5)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
