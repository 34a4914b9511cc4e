"""Run directories: one per run, written step by step so that a crash loses nothing already done.

<output>/<YYYYmmdd-HHMMSS>-<task>/
    run.json       task, driver, model, versions, start, end, status
    steps.jsonl    one StepRecord per line, appended and flushed when the step ends
    frames/        screenshots, stored once per distinct content (named by hash)
    report.html    made from the above by :mod:`agent.report`
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.agent.errors import RunLogError
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.secrets import scrub

__all__ = ["RunData", "RunWriter", "read_run", "run_status", "slugify", "write_atomic"]

RUN_STATUSES = ("running", "passed", "failed", "error", "interrupted", "budget")


def slugify(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    return slug[:60] or "run"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a full disk leaves the old file, never a torn one)."""
    tmp: str | None = None
    try:  # a new file of our own (O_EXCL: never through a link someone left), renamed over the old
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise RunLogError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    write_atomic(path, scrub(text).encode("utf-8"))  # no secret's value on disk


def run_status(status: str, outcomes: set[str]) -> str:
    """The status a run may be recorded with: never ``passed`` when one of its steps did not pass
    (an interrupted step makes it interrupted, a step in error an error, any other a failure)."""
    if status != "passed" or outcomes <= {"passed"}:
        return status
    for worst in ("interrupted", "error"):
        if worst in outcomes:
            return worst
    return "failed"


@functools.cache
def _versions() -> dict[str, str]:
    """Versions recorded in every run.json (read once per process: ~20 ms of package metadata)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("pixelpilot", "playwright", "transformers", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


class RunWriter:
    """Creates a run directory and appends to it. Use as a context manager or call :meth:`finish`."""

    def __init__(
        self, output: str | os.PathLike[str], task: str, *, meta: dict[str, Any] | None = None
    ) -> None:
        root = Path(output)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{slugify(task)}"
        n = 1
        while True:  # parallel workers may name a run the same second: the first mkdir wins the name
            path = root / (base if n == 1 else f"{base}-{n}")
            try:
                path.mkdir(parents=True)
                (path / "frames").mkdir()
                break
            except FileExistsError:
                n += 1
            except OSError as exc:
                raise RunLogError(f"cannot create the run directory {path}: {exc.strerror or exc}") from exc
        self.path = path
        self.meta: dict[str, Any] = {
            "task": task,
            "status": "running",
            "started": time.time(),
            "ended": None,
            "steps": 0,
            "versions": dict(_versions()),
            **(meta or {}),
        }
        self._steps = (path / "steps.jsonl").open("a", encoding="utf-8")
        self._frames: set[str] = set()
        self.outcomes: set[str] = set()
        """The outcomes of the steps appended so far."""
        self.finished = False
        _write_json_atomic(path / "run.json", self.meta)

    def save_frame(self, data: bytes, fmt: str = "png", *, digest: str | None = None) -> str:
        """Store an encoded frame once (``digest``: its sha1, when known); returns its path relative
        to the run directory."""
        digest = (digest or hashlib.sha1(data).hexdigest())[:16]
        ext = "jpg" if fmt in ("jpeg", "jpg") else fmt
        rel = f"frames/{digest}.{ext}"
        if rel not in self._frames:
            target = self.path / rel
            if not target.exists():
                write_atomic(target, data)
            self._frames.add(rel)
        return rel

    def append(self, step: StepRecord) -> None:
        """Append one step and flush it to disk before returning."""
        self.outcomes.add(step.outcome)
        self.meta["steps"] = step.index + 1
        try:
            self._steps.write(scrub(step.model_dump_json()) + "\n")
            self._steps.flush()
            os.fsync(self._steps.fileno())
        except OSError as exc:
            raise RunLogError(f"cannot write {self.path / 'steps.jsonl'}: {exc.strerror or exc}") from exc

    def update(self, **meta: Any) -> None:
        self.meta.update(meta)
        _write_json_atomic(self.path / "run.json", self.meta)

    def finish(self, status: str, *, error: str | None = None, report: bool = True, **extra: Any) -> Path:
        """Close the run with ``status``; writes run.json and report.html. Safe to call twice."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        if self.finished:
            return self.path
        self.finished = True
        with contextlib.suppress(OSError):  # a full disk: what was flushed is what there is
            self._steps.close()
        status = run_status(status, self.outcomes)
        if status != "passed" and error is None and self.outcomes - {"passed"}:
            error = "a step did not pass"
        self.meta.update(status=status, ended=time.time(), error=error, **extra)
        _write_json_atomic(self.path / "run.json", self.meta)
        if status == "passed" and not self.meta.get("replay_of"):
            with contextlib.suppress(OSError):  # the index is a shortcut: the run directories are the truth
                remember_passed(self.path.parent, str(self.meta["task"]), self.path.name)
        if report:
            from pixelpilot.agent.report import write_report

            write_report(self.path)
        return self.path

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.finish("passed")
        else:
            from pixelpilot.agent.step import outcome_of

            status, error, _ = outcome_of(exc)
            self.finish(status, error=error)


PASSED_INDEX = ".pixelpilot/last-passed.json"
"""Under an output folder: each task's newest passing run (``{task: run directory name}``)."""


def remember_passed(output: Path, task: str, run: str) -> None:
    """Note ``run`` as ``task``'s newest passing run under ``output`` (several workers may at once)."""
    import fcntl

    index = output / PASSED_INDEX
    index.parent.mkdir(parents=True, exist_ok=True)
    with (index.parent / "last-passed.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = passed_index(output)
        known[task] = run
        _write_json_atomic(index, known)


def passed_index(output: Path) -> dict[str, str]:
    """The tasks' newest passing runs as noted under ``output`` (empty when there is no note)."""
    try:
        data = json.loads((output / PASSED_INDEX).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


@dataclass
class RunData:
    path: Path
    meta: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """What could not be read (a torn last line, a missing run.json) — the rest is still usable."""


def read_run(path: str | os.PathLike[str]) -> RunData:
    """Read a run directory, tolerating what an interrupted run leaves behind."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no run directory at {path}")
    problems: list[str] = []
    meta: dict[str, Any]
    try:
        meta = json.loads((path / "run.json").read_text("utf-8"))
    except FileNotFoundError:
        meta = {"task": path.name, "status": "unknown"}
        problems.append("run.json is missing")
    except json.JSONDecodeError as exc:
        meta = {"task": path.name, "status": "unknown"}
        problems.append(f"run.json is damaged: {exc}")
    steps: list[StepRecord] = []
    sp = path / "steps.jsonl"
    if sp.exists():
        for n, line in enumerate(sp.read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                steps.append(StepRecord.model_validate_json(line))
            except ValueError:
                problems.append(f"steps.jsonl line {n} is incomplete and was skipped")
    if meta.get("status") == "running":
        problems.append("the run did not finish (the process stopped before it could record an end)")
    return RunData(path, meta, steps, problems)
