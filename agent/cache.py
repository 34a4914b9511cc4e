"""A verified cache of the last passing run of a task.

A re-run resolves targets (scripted steps) and decisions (model steps) from that run — but only after
checking that the screen still shows the same thing where the cached step acted (and, for a model's
decision, that the whole screen still looks the same). Anything else falls back to the live locator
chain or the model; the new run then becomes the cache.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from drivers.base import Box, Screen, decode_frame

from .memory import StepRecord
from .runlog import read_run
from .similarity import acted_region, similarity

__all__ = ["CacheHit", "StepCache", "last_passing_run"]

log = logging.getLogger(__name__)


def _load_grey(path: Path) -> np.ndarray:
    array = decode_frame(path.read_bytes(), grey=True)
    if array is None:
        raise ValueError(f"{path} is not a picture")
    return array


def last_passing_run(output: str | Path, task: str) -> Path | None:
    """The newest run directory under ``output`` of ``task`` that passed."""
    best: tuple[float, Path] | None = None
    for meta_file in Path(output).glob("*/run.json"):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("task") == task and meta.get("status") == "passed" and not meta.get("replay_of"):
            started = float(meta.get("started") or 0)
            if best is None or started > best[0]:
                best = (started, meta_file.parent)
    return best[1] if best else None


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
            if s.outcome == "passed" and s.frame:
                self._entries.setdefault(_key(s), []).append(s)
        self._used: dict[tuple[str, str], int] = {}
        self._frames: dict[str, Future[np.ndarray]] = {}
        # decode the recorded frames in the background, in the order the re-run will need them
        pool = ThreadPoolExecutor(1, thread_name_prefix="pixelpilot-cache")
        for entries in self._entries.values():
            for s in entries:
                rel = str(s.frame)
                if rel not in self._frames:
                    self._frames[rel] = pool.submit(_load_grey, self.run_dir / rel)
        pool.shutdown(wait=False)
        self.hits = 0
        self.misses = 0

    def _next(self, key: tuple[str, str]) -> StepRecord | None:
        entries = self._entries.get(key, [])
        i = self._used.get(key, 0)
        return entries[i] if i < len(entries) else None

    def _frame(self, step: StepRecord) -> np.ndarray:
        """The step's recorded frame in grey (every entry's was queued for decoding at load)."""
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
        if cached is None or (not cached.point and not cached.box and not whole_screen):
            return None
        try:
            old = self._frame(cached)
        except (OSError, ValueError) as exc:
            log.info("cache entry unusable: %s", exc)
            return None
        now = screen.grey
        if now.shape != old.shape:
            import cv2

            now = cv2.resize(now, (old.shape[1], old.shape[0]), interpolation=cv2.INTER_AREA)
        score = 1.0
        if whole_screen:
            score = similarity(old, now)
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

    def advance(self, kind: str, params: dict[str, Any], *, hit: bool) -> None:
        """Use up the entry for this step and count it as a hit or a miss."""
        key = _key(StepRecord(index=-1, kind=kind, params=params))
        self._used[key] = self._used.get(key, 0) + 1
        if hit:
            self.hits += 1
        else:
            self.misses += 1
