"""The runs index: an SQLite table rebuilt from the run directories, which stay the source of truth.

Each ``<runs>/<run>/run.json`` becomes one row; a refresh re-reads only run directories whose
``run.json`` or ``steps.jsonl`` changed since (by mtime and size), adds new ones and drops the ones that
are gone. The database lives in ``<runs>/.pixelpilot/index.sqlite`` and can be deleted at any time.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["SORTABLE", "RunIndex"]

SORTABLE = ("started", "task", "driver", "model", "status", "steps", "duration")
log = logging.getLogger(__name__)

_COLUMNS = "id, task, task_file, driver, model, status, steps, total_steps, started, ended, duration, error"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT, task_file TEXT, driver TEXT, model TEXT, status TEXT,
    steps INTEGER, total_steps INTEGER, started REAL, ended REAL, duration REAL, error TEXT,
    stamp TEXT
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
"""


def _stamp(run: Path, *, steps: bool = True) -> str | None:
    """What a run directory looks like on disk: run.json's mtime and size (and steps.jsonl's, while the
    run is going: its run.json is written only at start and end)."""
    parts = []
    for name in ("run.json", "steps.jsonl") if steps else ("run.json",):
        try:
            st = (run / name).stat()
        except OSError:
            if name == "run.json":
                return None
            parts.append("-")
            continue
        parts.append(f"{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def _text(value: Any, limit: int = 2000) -> str | None:
    return None if value is None else str(value)[:limit]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 31 else None


def _row(run: Path, stamp: str) -> tuple[Any, ...] | None:
    """The index row of one run directory, every field of the type its column promises (a run.json is
    input like any other: a string where a number belongs never reaches the page as markup)."""
    try:
        meta = json.loads((run / "run.json").read_text("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    steps = _count(meta.get("steps")) or 0
    if meta.get("status") == "running":
        stamp = _stamp(run) or stamp  # watch its steps.jsonl too until it ends
        try:  # run.json is written at start and end; count what is on disk
            with (run / "steps.jsonl").open("rb") as f:
                steps = sum(1 for line in f if line.strip())
        except OSError:
            pass
    started, ended = _number(meta.get("started")), _number(meta.get("ended"))
    duration = (ended - started) if started is not None and ended is not None else None
    return (
        run.name,
        _text(meta.get("task") or run.name, 300),
        _text(meta.get("task_file")),
        _text(meta.get("driver"), 100),
        _text(meta.get("model"), 300),
        _text(meta.get("status") or "unknown", 40),
        steps,
        _count(meta.get("total_steps")),
        started,
        ended,
        duration,
        _text(meta.get("error") or None),
        stamp,
    )


class RunIndex:
    """Thread-safe: one connection guarded by a lock (the console serves from several threads)."""

    def __init__(self, runs: Path) -> None:
        self.runs = runs.resolve()
        self.runs.mkdir(parents=True, exist_ok=True)
        where = self.runs / ".pixelpilot"
        where.mkdir(exist_ok=True)
        self.db_path = where / "index.sqlite"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False)
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError:  # a damaged index: it is only a cache of the run directories
            self._db.close()
            self.db_path.unlink(missing_ok=True)
            self._db = sqlite3.connect(self.db_path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        self.last_refresh: dict[str, float] = {}

    def refresh(self) -> dict[str, float]:
        """Bring the table up to date with the run directories; returns what it did."""
        t0 = time.perf_counter()
        with self._lock:
            known: dict[str, str] = {}
            running: set[str] = set()
            for run_id, stamp, status in self._db.execute("SELECT id, stamp, status FROM runs"):
                known[run_id] = stamp
                if status == "running":
                    running.add(run_id)
            seen: set[str] = set()
            changed: list[tuple[Any, ...]] = []
            skipped: list[str] = []
            with os.scandir(self.runs) as it:
                for entry in it:
                    # a link is not a run folder: following it could list (and serve) anything
                    if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                        continue
                    run = Path(entry.path)
                    stamp = _stamp(run, steps=entry.name in running)
                    if stamp is None:
                        continue
                    seen.add(entry.name)
                    if known.get(entry.name) != stamp:
                        row = _row(run, stamp)
                        if row is not None:
                            changed.append(row)
                        else:
                            skipped.append(entry.name)
            gone = [k for k in known if k not in seen]
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", changed
                )
                self._db.executemany("DELETE FROM runs WHERE id = ?", [(k,) for k in gone])
        for name in skipped:
            log.warning("skipping the run folder %s: its run.json cannot be read", name)
        self.last_refresh = {
            "runs": len(seen),
            "updated": len(changed),
            "removed": len(gone),
            "skipped": len(skipped),
            "ms": round((time.perf_counter() - t0) * 1000, 1),
        }
        return self.last_refresh

    def list(
        self,
        *,
        q: str | None = None,
        status: str | None = None,
        sort: str = "started",
        order: str = "desc",
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        if sort not in SORTABLE:
            raise ValueError(f"cannot sort by {sort!r}; one of {', '.join(SORTABLE)}")
        direction = "ASC" if order == "asc" else "DESC"
        where, args = [], []
        if q:
            where.append("(task LIKE ? OR id LIKE ? OR model LIKE ? OR driver LIKE ? OR task_file LIKE ?)")
            args += [f"%{q}%"] * 5
        if status:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM runs {clause}", args).fetchone()[0]
            rows = self._select(
                f"{clause} ORDER BY {sort} {direction}, id {direction} LIMIT ? OFFSET ?",
                [*args, limit, offset],
            )
        return total, rows

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            rows = self._select("WHERE id = ?", [run_id])
        return rows[0] if rows else None

    def _select(self, rest: str, args: builtins.list[Any]) -> builtins.list[dict[str, Any]]:
        cur = self._db.execute(f"SELECT {_COLUMNS} FROM runs {rest}", args)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()
