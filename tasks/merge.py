"""Shards that compose: each batch leaves ``batch.json`` in its output folder (what ran, how it ended,
which run directory holds it); ``pixelpilot merge OUT... --into MERGED`` brings the run directories of
several outputs (CI matrix jobs, an Indexed Job's pods, Ray nodes) into one folder with one JUnit file,
one summary page and one runs index — as if one machine had run them all."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.runlog import _write_json_atomic, read_run, remember_passed
from pixelpilot.tasks.batch import BatchResult, TaskOutcome, write_junit

__all__ = ["BATCH_FILE", "merge_outputs", "read_batch", "write_batch", "write_summary"]

BATCH_FILE = "batch.json"


def write_batch(result: BatchResult, output: Path, *, shard: tuple[int, int] | None) -> Path:
    """Record a batch in its output folder (the latest batch there; one output folder per shard)."""
    data = {
        "shard": list(shard) if shard else None,
        "seconds": round(result.seconds, 3),
        "interrupted": result.interrupted,
        "written": time.time(),
        "outcomes": [_outcome(o, output) for o in result.outcomes],
    }
    path = output / BATCH_FILE
    _write_json_atomic(path, data)
    return path


def _outcome(o: TaskOutcome, output: Path) -> dict[str, Any]:
    run = None
    if o.run_dir is not None:
        run = o.run_dir.name if o.run_dir.parent.resolve() == output.resolve() else str(o.run_dir)
    return {
        "task": str(o.path),
        "status": o.status,
        "exit_code": o.exit_code,
        "error": o.error,
        "run": run,
        "seconds": round(o.seconds, 3),
        "steps_done": o.steps_done,
        "steps_total": o.steps_total,
        "attempts": o.attempts,
        "step_table": o.step_table,
        "output": o.output[-4000:],
    }


def read_batch(output: Path) -> tuple[dict[str, Any], list[TaskOutcome]]:
    path = output / BATCH_FILE
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError:
        raise ConfigError(f"{output} holds no {BATCH_FILE}: is it the --output of a batch run?") from None
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("outcomes"), list):
        raise ConfigError(f"{path} is not a batch record")
    outcomes = []
    for item in data["outcomes"]:
        o = TaskOutcome(Path(str(item.get("task"))))
        o.status, o.exit_code, o.error = str(item.get("status")), item.get("exit_code"), item.get("error")
        run = item.get("run")
        o.run_dir = (output / run if "/" not in run else Path(run)) if isinstance(run, str) else None
        o.started, o.ended = 0.0, float(item.get("seconds") or 0)
        o.steps_done, o.steps_total = int(item.get("steps_done") or 0), int(item.get("steps_total") or 0)
        o.attempts = [str(a) for a in item.get("attempts") or []]
        o.step_table, o.output = str(item.get("step_table") or ""), str(item.get("output") or "")
        outcomes.append(o)
    return data, outcomes


def merge_outputs(outputs: Sequence[Path], into: Path, *, junit: Path | None = None) -> BatchResult:
    """Merge batch outputs into ``into``: their run directories (hard links where the disk allows,
    copies elsewhere), ``batch.json``, ``junit.xml`` (or ``junit``), ``index.html`` and the index of
    passing runs. A task that ran in two outputs is an error (the shards overlapped)."""
    into.mkdir(parents=True, exist_ok=True)
    merged: list[TaskOutcome] = []
    seen: dict[str, Path] = {}
    seconds, interrupted, shards = 0.0, False, []
    for out in outputs:
        data, outcomes = read_batch(out)
        seconds = max(seconds, float(data.get("seconds") or 0))  # shards run side by side
        interrupted |= bool(data.get("interrupted"))
        shards.append(data.get("shard"))
        for o in outcomes:
            key = str(o.path)
            if key in seen:
                raise ConfigError(f"{key} ran in both {seen[key]} and {out}: the shards overlap")
            seen[key] = out
            if o.run_dir is not None and o.run_dir.is_dir():
                o.run_dir = _bring(o.run_dir, into)
            merged.append(o)
    merged.sort(key=lambda o: str(o.path))
    result = BatchResult(merged, seconds=seconds, interrupted=interrupted)
    write_junit(result, junit or into / "junit.xml")
    write_batch(result, into, shard=None)
    record = json.loads((into / BATCH_FILE).read_text())
    record["merged_from"] = [str(o) for o in outputs]
    record["shards"] = shards
    _write_json_atomic(into / BATCH_FILE, record)
    for o in merged:  # "last passing run of this task" stays a lookup in the merged folder
        if o.status == "passed" and o.run_dir is not None:
            meta = read_run(o.run_dir).meta
            if meta.get("task"):
                remember_passed(into, str(meta["task"]), o.run_dir.name)
    write_summary(result, into)
    return result


def _bring(run: Path, into: Path) -> Path:
    target = into / run.name
    if target.resolve() == run.resolve():
        return target
    n = 1
    while target.exists():  # two shards' runs of the same second and task name
        n += 1
        target = into / f"{run.name}-m{n}"

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(run, target, copy_function=link_or_copy)
    return target


_env = Environment(
    loader=PackageLoader("pixelpilot.tasks", "templates"),
    autoescape=select_autoescape(default=True),
)


def write_summary(result: BatchResult, into: Path) -> Path:
    """``index.html``: every task, its status and time, and a link to its report."""
    rows = []
    for o in result.outcomes:
        report = o.run_dir / "report.html" if o.run_dir and (o.run_dir / "report.html").is_file() else None
        rows.append(
            {
                "task": o.path.name,
                "folder": o.path.parent.name,
                "status": o.status,
                "flaky": o.flaky,
                "tries": len(o.attempts) + 1,
                "seconds": o.seconds,
                "error": (o.error or "").splitlines()[0][:300] if o.status != "passed" else "",
                "report": os.path.relpath(report, into) if report else None,
            }
        )
    counts = {s: sum(r["status"] == s for r in rows) for s in ("passed", "failed", "error", "interrupted")}
    html = _env.get_template("summary.html").render(
        rows=rows, counts=counts, flaky=sum(r["flaky"] for r in rows), seconds=result.seconds
    )
    path = into / "index.html"
    path.write_text(html, "utf-8")
    return path
