"""A verified cache of the last passing run of a task.

A re-run resolves targets (scripted steps) and decisions (model steps) from that run — but only after
checking that the screen still shows the same thing where the cached step acted (and, for a model's
decision, that the whole screen still looks the same). A model's typing, on a driver that can tell
which field has keyboard focus, is checked against the field it typed into instead (no frame: the
next step's frame shows what the typing did). Anything else falls back to the live locator chain or
the model; the new run then becomes the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.runlog import passed_index, read_run
from pixelpilot.agent.similarity import Prepared, acted_region, prepare, similarity
from pixelpilot.drivers.base import Box, Screen, UINode, decode_frame

__all__ = ["CacheHit", "StepCache", "focus_record", "last_passing_run", "same_field"]

log = logging.getLogger(__name__)


def _load(path: Path) -> tuple[np.ndarray, Prepared]:
    """A recorded frame in grey, and prepared for the whole-screen comparison."""
    array = decode_frame(path.read_bytes(), grey=True)
    if array is None:
        raise ValueError(f"{path} is not a picture")
    return array, prepare(array)


def last_passing_run(output: str | os.PathLike[str], task: str) -> Path | None:
    """The newest run directory under ``output`` of ``task`` that passed: its run.json says so *and*
    its steps.jsonl holds every step it counted, each passed (a run whose record was cut short, or
    written by an older version that could call a crash passed, is never a cache).

    A lookup in the output folder's index of passing runs (written as runs pass); a scan of every
    run.json only when the index has no valid entry for the task (older folders, a merged one)."""
    noted = passed_index(Path(output)).get(task)
    if noted and "/" not in noted and noted not in (".", ".."):
        run = Path(output) / noted
        try:
            meta = json.loads((run / "run.json").read_text())
        except (OSError, ValueError):
            meta = None
        noted_ok = isinstance(meta, dict) and meta.get("task") == task and meta.get("status") == "passed"
        if noted_ok and _all_steps_passed(run):
            return run
    found: list[tuple[float, Path]] = []
    for meta_file in Path(output).glob("*/run.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        if meta.get("task") == task and meta.get("status") == "passed" and not meta.get("replay_of"):
            try:
                started = float(meta.get("started") or 0)
            except (TypeError, ValueError):
                continue
            found.append((started, meta_file.parent))
    for _, run in sorted(found, key=lambda f: f[0], reverse=True):
        if _all_steps_passed(run):
            return run
        log.warning("not using %s as a cache: its steps do not all say passed", run)
    return None


def _all_steps_passed(run: Path) -> bool:
    data = read_run(run)
    counted = data.meta.get("steps")
    return (
        not data.problems
        and bool(data.steps)
        and all(s.outcome == "passed" for s in data.steps)
        and (counted is None or counted == len(data.steps))
    )


def focus_record(node: UINode) -> dict[str, Any]:
    """What a run records of the field a model's typing went into (the value only as a digest)."""
    return {
        "role": node.role,
        "name": node.name or node.placeholder,
        "box": [round(v, 1) for v in node.box.as_list()],
        "value": None if node.value is None else hashlib.sha1(node.value.encode()).hexdigest()[:12],
    }


def same_field(recorded: dict[str, Any], node: UINode | None) -> bool:
    """Whether ``node`` is the field a recorded typing went into (:func:`focus_record`)."""
    if node is None:
        return False
    now = focus_record(node)
    return (
        now["role"] == recorded.get("role")
        and now["name"] == recorded.get("name")
        and now["value"] == recorded.get("value")
        and all(abs(a - b) <= 4 for a, b in zip(now["box"], recorded.get("box") or (), strict=False))
    )


@dataclass(frozen=True)
class CacheHit:
    step: StepRecord
    point: tuple[int, int] | None
    box: Box | None
    score: float
    source_run: Path


def _key(step: StepRecord) -> tuple[str, str]:
    p = step.params
    if step.kind == "goal":
        return ("goal", f"{p.get('goal')}#{p.get('step')}")
    if step.kind == "act":
        return ("act", str(p.get("instruction")))
    return (
        step.kind,
        json.dumps({k: p.get(k) for k in ("target", "image", "nth", "into", "text")}, sort_keys=True),
    )


class StepCache:
    """Entries of one recorded run, looked up by step kind and what the step named, in order."""

    def __init__(
        self, run_dir: str | Path, *, local_threshold: float = 0.9, global_threshold: float = 0.9
    ) -> None:
        self.run_dir = Path(run_dir)
        self.local_threshold, self.global_threshold = local_threshold, global_threshold
        self._entries: dict[tuple[str, str], list[StepRecord]] = {}
        for s in read_run(run_dir).steps:
            if s.outcome == "passed" and (s.frame or s.focus):
                self._entries.setdefault(_key(s), []).append(s)
        self._used: dict[tuple[str, str], int] = {}
        self._frames: dict[str, Future[tuple[np.ndarray, Prepared]]] = {}
        # decode the recorded frames in the background, in the order the re-run will need them
        pool = ThreadPoolExecutor(1, thread_name_prefix="pixelpilot-cache")
        for entries in self._entries.values():
            for s in entries:
                rel = str(s.frame)
                if s.frame and rel not in self._frames:
                    self._frames[rel] = pool.submit(_load, self.run_dir / rel)
        pool.shutdown(wait=False)
        self.hits = 0
        self.misses = 0

    def _next(self, key: tuple[str, str]) -> StepRecord | None:
        entries = self._entries.get(key, [])
        i = self._used.get(key, 0)
        return entries[i] if i < len(entries) else None

    def _frame(self, step: StepRecord) -> tuple[np.ndarray, Prepared]:
        """The step's recorded frame in grey and prepared (every entry's was queued for decoding at load)."""
        return self._frames[str(step.frame)].result()

    def lookup(
        self, kind: str, params: dict[str, Any], screen: Screen, *, whole_screen: bool = False
    ) -> CacheHit | None:
        """The cached step for this one, if the screen still matches it where it acted; the entry is
        used up either way (a miss makes the live path decide, and the new run becomes the cache)."""
        hit = self.peek(kind, params, screen, whole_screen=whole_screen)
        self.advance(kind, params, hit=hit is not None)
        return hit

    def peek(
        self, kind: str, params: dict[str, Any], screen: Screen, *, whole_screen: bool = False
    ) -> CacheHit | None:
        """Like ``lookup`` without using the entry up: to look again after the screen settles."""
        cached = self._next(_key(StepRecord(index=-1, kind=kind, params=params)))
        if cached is None or not cached.frame or (not cached.point and not cached.box and not whole_screen):
            return None
        try:
            old, prepared = self._frame(cached)
        except (OSError, ValueError) as exc:
            log.info("cache entry unusable: %s", exc)
            return None
        now = screen.grey
        if now.shape != old.shape:
            import cv2

            now = cv2.resize(now, (old.shape[1], old.shape[0]), interpolation=cv2.INTER_AREA)
        score = 1.0
        if whole_screen:
            score = similarity(prepared, now)
            if score < self.global_threshold:
                log.info("cache miss for %s: the screen changed (%.3f)", kind, score)
                return None
        region = acted_region(cached, (old.shape[1], old.shape[0]))
        if region is not None:
            x0, y0, x1, y1 = region
            local = similarity(old[y0:y1, x0:x1], now[y0:y1, x0:x1], width=max(16, min(160, x1 - x0)))
            score = min(score, local)
            if local < self.local_threshold:
                log.info("cache miss for %s: the element changed or moved (%.3f)", kind, local)
                return None
        box = Box(*cached.box) if cached.box else None
        return CacheHit(cached, cached.point, box, round(score, 4), self.run_dir)

    def typing_entry(self, kind: str, params: dict[str, Any]) -> StepRecord | None:
        """The cached step for this one if it is a model's typing with the field it went into."""
        cached = self._next(_key(StepRecord(index=-1, kind=kind, params=params)))
        if cached is None or not cached.focus or (cached.action or {}).get("action") != "type":
            return None
        return cached

    def peek_focus(self, kind: str, params: dict[str, Any], focused: UINode | None) -> CacheHit | None:
        """The cached typing for this step if the field with keyboard focus now is the one it typed
        into (same role, name, place and value); without using the entry up."""
        cached = self.typing_entry(kind, params)
        if cached is None or cached.focus is None:
            return None
        if not same_field(cached.focus, focused):
            log.info(
                "cache miss for %s: the keyboard focus is on %s",
                kind,
                focused.describe() if focused else "nothing",
            )
            return None
        box = Box(*cached.box) if cached.box else None
        return CacheHit(cached, None, box, 1.0, self.run_dir)

    def advance(self, kind: str, params: dict[str, Any], *, hit: bool) -> None:
        """Use up the entry for this step and count it as a hit or a miss."""
        key = _key(StepRecord(index=-1, kind=kind, params=params))
        self._used[key] = self._used.get(key, 0) + 1
        if hit:
            self.hits += 1
        else:
            self.misses += 1
