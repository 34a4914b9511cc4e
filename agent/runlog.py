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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .memory import StepRecord

__all__ = ["RunData", "RunWriter", "read_run", "slugify"]

RUN_STATUSES = ("running", "passed", "failed", "error", "interrupted", "budget")


def slugify(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")
    return slug[:60] or "run"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), "utf-8")
    os.replace(tmp, path)


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
        path = root / base
        n = 1
        while path.exists():
            n += 1
            path = root / f"{base}-{n}"
        (path / "frames").mkdir(parents=True)
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
                target.write_bytes(data)
            self._frames.add(rel)
        return rel

    def append(self, step: StepRecord) -> None:
        """Append one step and flush it to disk before returning."""
        self._steps.write(step.model_dump_json() + "\n")
        self._steps.flush()
        os.fsync(self._steps.fileno())
        self.meta["steps"] = step.index + 1

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
        self._steps.close()
        self.meta.update(status=status, ended=time.time(), error=error, **extra)
        _write_json_atomic(self.path / "run.json", self.meta)
        if report:
            from .report import write_report

            write_report(self.path)
        return self.path

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.finish("passed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("interrupted", error="interrupted by the user (Ctrl-C)")
        else:
            self.finish("error", error=f"{exc_type.__name__}: {exc}")


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
        meta, _ = {"task": path.name, "status": "unknown"}, problems.append("run.json is missing")
    except json.JSONDecodeError as exc:
        meta, _ = {"task": path.name, "status": "unknown"}, problems.append(f"run.json is damaged: {exc}")
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
