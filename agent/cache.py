"""A verified cache of the last passing run of a task.

A re-run resolves targets (scripted steps) and decisions (model steps) from that run — but only after
checking that the screen still shows the same thing where the cached step acted (and, for a model's
decision, that the whole screen still looks the same). Anything else falls back to the live locator
chain or the model; the new run then becomes the cache.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from drivers.base import Box, Screen

from .memory import StepRecord
from .runlog import read_run
from .similarity import acted_region, similarity

__all__ = ["CacheHit", "StepCache", "last_passing_run"]

log = logging.getLogger(__name__)


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
        self.hits = 0
        self.misses = 0

    def _next(self, key: tuple[str, str]) -> StepRecord | None:
        entries = self._entries.get(key, [])
        i = self._used.get(key, 0)
        self._used[key] = i + 1
        return entries[i] if i < len(entries) else None

    def _frame(self, step: StepRecord) -> Image.Image:
        return Image.open(self.run_dir / str(step.frame)).convert("RGB")

    def lookup(
        self, kind: str, params: dict[str, Any], screen: Screen, *, whole_screen: bool = False
    ) -> CacheHit | None:
        """The cached step for this one, if the screen still matches it where it acted."""
        probe = StepRecord(index=-1, kind=kind, params=params)
        cached = self._next(_key(probe))
        if cached is None or (not cached.point and not cached.box and not whole_screen):
            self.misses += 1
            return None
        old = self._frame(cached)
        now = screen.image if screen.image.size == old.size else screen.image.resize(old.size)
        score = 1.0
        if whole_screen:
            score = similarity(old, now)
            if score < self.global_threshold:
                self.misses += 1
                log.info("cache miss for %s: the screen changed (%.3f)", kind, score)
                return None
        region = acted_region(cached, old.size)
        if region is not None:
            local = similarity(
                old.crop(region), now.crop(region), width=max(16, min(160, region[2] - region[0]))
            )
            score = min(score, local)
            if local < self.local_threshold:
                self.misses += 1
                log.info("cache miss for %s: the element changed or moved (%.3f)", kind, local)
                return None
        self.hits += 1
        box = Box(*cached.box) if cached.box else None
        return CacheHit(cached, cached.point, box, round(score, 4), self.run_dir)
