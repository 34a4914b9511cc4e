"""Typed step records: what happened at each step, serialised as one JSON line in ``steps.jsonl``."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Outcome", "StepRecord", "elapsed_ms", "step_table"]

Outcome = Literal["passed", "failed", "error", "interrupted"]


class StepRecord(BaseModel):
    """One step of a run. ``point``/``box`` are in screenshot pixels of ``frame``."""

    model_config = ConfigDict(extra="allow")

    index: int
    kind: str
    """The step's verb: click, type, key, scroll, select, open, wait_for, see, act, goal ..."""
    instruction: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    started: float = Field(default_factory=time.time)
    frame: str | None = None
    """Frame before the step, relative to the run directory."""
    frame_after: str | None = None
    """For waits and failures: the last frame seen."""
    screen: tuple[int, int] | None = None
    scale: float = 1.0
    action: dict[str, Any] | None = None
    actions: list[dict[str, Any]] = Field(default_factory=list)
    """Every action the step performed, in order (replay re-executes them)."""
    elements: list[dict[str, Any] | None] = Field(default_factory=list)
    """For a model's actions (``goal``/``act``) on a driver with a UI tree, one per action: the element
    it acted on and a target that finds it alone (:mod:`pixelpilot.agent.elements`), for export."""
    task_step: int | None = None
    """The task file's step (0-based) this step ran for."""
    point: tuple[int, int] | None = None
    box: list[float] | None = None
    locator: str | None = None
    """Which locator answered: ui-tree, ocr, template, model, cache."""
    target: str | None = None
    focus: dict[str, Any] | None = None
    """For a model's typing on a driver that can tell (the browser): the field with keyboard focus
    when it typed — role, name, box and a digest of the value it held. A cached re-run checks it
    instead of taking a frame."""
    downloads: list[dict[str, Any]] = Field(default_factory=list)
    """Files the step's action downloaded: name, URL, file (relative to the run directory)."""
    tab: dict[str, Any] | None = None
    """Browser: the tab the step acted on (index among the context's pages, URL)."""
    dialogs: list[dict[str, Any]] = Field(default_factory=list)
    """JavaScript dialogs the step's action opened: type, message, and what was done (accepted ...)."""
    navigation: dict[str, Any] | None = None
    """When the step's action navigated the page: the new URL, the HTTP status, an error."""
    effect: str | None = None
    """changed, none (no visible effect), unknown, or deferred (an action from the cache: the next
    step waits for the screen to settle, when it does not already match)."""
    retried: bool = False
    outcome: Outcome = "passed"
    error: str | None = None
    error_type: str | None = None
    candidates: list[str] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    """Milliseconds: observe, locate, act, settle, verify, total."""
    result: Any = None
    """What the step produced (an answer, a check's verdict ...)."""
    model: dict[str, Any] | None = None
    """Model call details: prompt digest, image size, raw reply, tokens, latency."""

    def summary(self) -> str:
        what = self.instruction or self.kind
        return f"{self.index:>3} {self.kind:<9} {what[:60]:<60} {self.outcome}"


def elapsed_ms(start: float, end: float) -> float:
    """A step timing: seconds between two clock readings, in milliseconds to 0.01."""
    return round((end - start) * 1000, 2)


def step_table(steps: list[StepRecord]) -> str:
    """The steps as a small text table (failure messages, JUnit)."""
    rows = [f"  {'#':>3}  {'step':<9} {'target':<44} {'located':<9} {'outcome':<11} ms"]
    for s in steps:
        rows.append(
            f"  {s.index:>3}  {s.kind:<9} {(s.instruction or '')[:44]:<44} {s.locator or '-':<9} {s.outcome:<11} {s.timings.get('total', 0):.0f}"
        )
    return "\n".join(rows)
