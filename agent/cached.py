"""The cache's side of a step: how a cache-aware step consults the verified cache, and what a model's
typing records for it.

A step's cached decision is used when its frame still matches the recorded one where it acted (and,
for a model's decision, as a whole); after an action from the cache that did not wait to settle, a
mismatch first waits for the screen to settle and looks again. A model's typing is checked by the
field with keyboard focus instead, on drivers that can name it (:class:`drivers.base.FocusReader`):
such a step takes no frame at all.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pixelpilot.agent.cache import CacheHit, focus_record
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.drivers.base import FocusReader, Screen
from pixelpilot.tools.errors import DriverError

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["UNOBSERVED", "lookup", "note_focus", "types_from_cache"]

log = logging.getLogger(__name__)

UNOBSERVED = Screen(None, 0, 0)
"""Given to a cache-aware step whose cached decision types into a field the driver can name: the
lookup checks the keyboard focus instead of a frame."""


def types_from_cache(agent: Agent, rec: StepRecord) -> bool:
    """Whether this step's cached decision is typing that can be checked by the keyboard focus."""
    return (
        agent.cache is not None
        and isinstance(agent.driver, FocusReader)
        and agent.cache.typing_entry(rec.kind, rec.params) is not None
    )


def lookup(
    agent: Agent, rec: StepRecord, screen: Screen, *, whole_screen: bool = False
) -> tuple[CacheHit | None, Screen]:
    """The cached decision for this step if the screen still matches it, and the screen it was
    checked on (a fresh frame after settling; ``UNOBSERVED`` for typing checked by the focus)."""
    cache = agent.cache
    assert cache is not None
    if screen is UNOBSERVED:
        return _by_focus(agent, rec)
    hit = cache.peek(rec.kind, rec.params, screen, whole_screen=whole_screen)
    if hit is None and agent.pipeline.unsettled:
        # the page may still be busy (a spinner, a "Signing in..." that ticks): settle and look again
        # while what is on screen keeps changing, up to the settle timeout, as an auto-waiting
        # expectation would; a screen that stays the same and does not match is a miss
        deadline = agent.clock() + agent.settings.settle_timeout
        while True:
            agent.pipeline.catch_up(rec)
            seen, screen = screen, agent.pipeline.observe(rec)
            hit = cache.peek(rec.kind, rec.params, screen, whole_screen=whole_screen)
            if hit is not None or agent.clock() >= deadline or _same_frame(seen, screen):
                break
    cache.advance(rec.kind, rec.params, hit=hit is not None)
    return hit, screen


def _same_frame(a: Screen, b: Screen) -> bool:
    return a.digest == b.digest


def _by_focus(agent: Agent, rec: StepRecord) -> tuple[CacheHit | None, Screen]:
    """A cached typing step: hit when the field with keyboard focus is the one it typed into (after
    settling, when an earlier action from the cache left the page unsettled). On a miss the typing
    would go elsewhere: the step takes its frame and the model decides."""
    cache, driver = agent.cache, agent.driver
    assert cache is not None and isinstance(driver, FocusReader)
    t = agent.clock()
    hit = cache.peek_focus(rec.kind, rec.params, driver.keyboard_focus())
    if hit is None and agent.pipeline.unsettled:
        agent.pipeline.catch_up(rec)
        hit = cache.peek_focus(rec.kind, rec.params, driver.keyboard_focus())
    rec.timings["verify"] = _ms(t, agent.clock())
    cache.advance(rec.kind, rec.params, hit=hit is not None)
    if hit is None:
        return None, agent.pipeline.observe(rec)
    rec.focus, rec.target, rec.box = hit.step.focus, hit.step.target, hit.step.box
    return hit, UNOBSERVED


def note_focus(agent: Agent, rec: StepRecord) -> None:
    """Before typing that names no field (the model's, or a ``type`` step without ``into``): record
    the widget it goes into (the report shows it; a re-run checks it). Nothing is recorded where the
    driver cannot tell, or already knows (from the cache)."""
    blind = rec.kind in ("goal", "act") or (rec.kind == "type" and not (rec.params or {}).get("into"))
    if not blind or rec.focus is not None or not isinstance(agent.driver, FocusReader):
        return
    try:
        node = agent.driver.keyboard_focus()
    except DriverError as exc:  # only a record for the report and the cache: type anyway
        log.info("could not read the keyboard focus before typing: %s", exc)
        return
    if node is None:
        return
    rec.focus = focus_record(node)
    if rec.box is None:
        rec.target, rec.box = node.describe(), node.box.as_list()
