"""Where a step acts: the target found from the cache, the locator chain (the UI tree, OCR, a picture,
scrolling an element into view first when it is out of it) or the model's grounding. :class:`Targets` is
that part of :class:`~pixelpilot.agent.session.Agent`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from pixelpilot.agent import cached, loop
from pixelpilot.agent.errors import LocateError
from pixelpilot.agent.locate import Located, Locator, match_fields, pick_located
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.agent.query import CssLookup, Query, Target, TextMatch, resolve
from pixelpilot.drivers.base import Revealer, Screen, UINode
from pixelpilot.tools.ocr import normalize

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["Targets"]

log = logging.getLogger(__name__)


class Targets:
    """Mixed into :class:`~pixelpilot.agent.session.Agent` (which sets these up)."""

    driver: Any
    locator: Locator
    clock: Callable[[], float]

    @property
    def _agent(self) -> Agent:
        return cast("Agent", self)

    _beyond: CssLookup | None = None
    """While the elements out of view are searched: the CSS lookup that includes them."""

    @property
    def _css(self) -> CssLookup | None:
        """The driver's CSS selector lookup (web pages), for ``css=`` targets."""
        return self._beyond or getattr(self.driver, "css_nodes", None)

    def _locate(self, screen: Screen, target: Target, nth: int | None, rec: StepRecord) -> Located:
        q = Query.of(target)
        t = self.clock()
        mode = self._agent.settings.use_model if self._agent.model is not None else "never"
        if q.plain_text is None and mode == "only":
            mode = "fallback"  # the model grounds a description; a structured query is the locators'
        hit, screen = (
            cached.lookup(self._agent, rec, screen) if self._agent.cache is not None else (None, screen)
        )
        if hit is not None and hit.point is not None:
            rec.timings["locate"] = _ms(t, self.clock())
            rec.result = {
                "cache": {"from_run": str(hit.source_run), "step": hit.step.index, "score": hit.score}
            }
            loc = Located(hit.point, "cache", hit.box, None)
            self._agent.pipeline.note_location(rec, loc)
            return loc
        if mode == "only":
            loc = loop.ground(self._agent, screen, q.describe(), rec)
        else:
            try:
                loc = self._find_element(screen, rec, q, nth)
            except LocateError as exc:
                if exc.kind != "not_found" or mode == "never" or q.plain_text is None:
                    raise
                rec.candidates = [str(c) for c in exc.candidates]
                loc = loop.ground(self._agent, screen, q.plain_text, rec)
        rec.timings["locate"] = _ms(t, self.clock())
        self._agent.pipeline.note_location(rec, loc)
        return loc

    def _placed(
        self,
        screen: Screen,
        rec: StepRecord,
        q: Query,
        nth: int | None,
        find: Callable[[Screen], Located],
        match: Callable[[list[UINode]], list[UINode]],
    ) -> Located:
        """``_find`` on ``screen``, waiting (up to the settle timeout, on fresh frames) while the element
        found lies above or left of the screen: a window still being placed (a dialog just mapped
        reports its fields at negative positions for a moment). Still there then: a clear error, not
        a click outside the screen."""
        deadline = self.clock() + self._agent.settings.settle_timeout
        while True:
            loc = self._find(screen, rec, find, match, q, nth)
            x, y = loc.point
            if not screen.taken or (x >= 0 and y >= 0):  # past the right or bottom edge: a page scrolls there
                return loc
            if self.clock() >= deadline:
                raise LocateError(
                    f"{q.describe()!r} is off the screen at ({x}, {y}): its window is not on the screen",
                    target=q.describe(),
                    kind="off_screen",
                )
            log.info(
                "%r is off the screen at (%s, %s): waiting for its window to be placed", q.describe(), x, y
            )
            time.sleep(0.1)
            screen = self._agent.pipeline.observe(rec)

    def _find_element(self, screen: Screen, rec: StepRecord, q: Query, nth: int | None) -> Located:
        """The element ``q`` finds to act on: in view, else scrolled into view (no cache, no model)."""
        return self._placed(
            screen,
            rec,
            q,
            nth,
            lambda s: self.locator.text(s, q, nth=nth, css=self._css),
            lambda nodes: resolve(q, nodes, act=True, css=self._css),
        )

    def _field(self, screen: Screen, label: Target, nth: int | None, rec: StepRecord) -> Located:
        q = Query.of(label)
        return self._placed(
            screen,
            rec,
            q,
            nth,
            lambda s: self.locator.field(s, q, nth=nth, css=self._css),
            lambda nodes: (
                match_fields(nodes, q.plain_text)
                if q.plain_text is not None
                else resolve(q, nodes, act=True, css=self._css)
            ),
        )

    def _find(
        self,
        screen: Screen,
        rec: StepRecord,
        find: Callable[[Screen], Located],
        match: Callable[[list[UINode]], list[UINode]],
        q: Query,
        nth: int | None,
    ) -> Located:
        """``find`` on ``screen``; when nothing in view matches but an element scrolled out of view
        does (out of the page's view, or cut off by a scrolling box), scroll it into view (as
        Playwright does before acting), take a new frame and find again. A text found only as a word
        of a longer plain text (an instruction that names the button) gives way to a control that
        has exactly that name out of view."""
        driver = self.driver
        if q.counts_nested and screen.tree is not None and isinstance(driver, Revealer):
            return self._find_on_page(screen, rec, find, match, q, nth)
        try:
            loc = find(screen)
        except LocateError as exc:
            if exc.kind != "not_found" or screen.tree is None or not isinstance(driver, Revealer):
                raise
            hits = self._beyond_view(match)
            if not hits:
                raise
        else:
            text = q.plain_text
            n = loc.node
            if (
                text is None
                or n is None
                or n.interactive
                or TextMatch(text).best([n.name, n.text]) == 2
                or not isinstance(driver, Revealer)
            ):
                return loc
            hits = [
                h
                for h in self._beyond_view(match)
                if h.interactive and TextMatch(text).best([h.name, h.text]) == 2
            ]
            if not hits:
                return loc
            log.info("%r is only a word of %s here: the control named so is out of view", text, n.describe())
        self._scroll_to(self._pick(hits, q, nth), q, rec)
        return find(self._agent.pipeline.observe(rec))

    def _find_on_page(
        self,
        screen: Screen,
        rec: StepRecord,
        find: Callable[[Screen], Located],
        match: Callable[[list[UINode]], list[UINode]],
        q: Query,
        nth: int | None,
    ) -> Located:
        """A query that counts its scope (``inside: {…, nth: 2}``: the second post on the page, not
        the second one in view) is answered on the whole page; the element is then scrolled into
        view and found again the same way."""
        hits = self._beyond_view(match)
        if hits:
            self._scroll_to(self._pick(hits, q, nth), q, rec)
            self._agent.pipeline.observe(rec)
            hits = self._beyond_view(match)
        if not hits:
            return find(screen)  # raises, with the nearest texts in view
        return self._pick(hits, q, nth)

    @staticmethod
    def _pick(hits: list[UINode], q: Query, nth: int | None) -> Located:
        return pick_located(
            [Located(n.box.center, "ui-tree", n.box, n, len(hits)) for n in hits],
            q,
            nth if nth is not None else q.nth,
        )

    def _scroll_to(self, loc: Located, q: Query, rec: StepRecord) -> None:
        """Scroll the element ``loc`` found out of view into view, and say so in the record."""
        node = loc.node
        assert node is not None
        log.info("%r is out of view: scrolling %s into view", q.describe(), node.describe())
        self.driver.scroll_into_view(node)
        rec.result = {"scrolled_into_view": node.describe()}

    def _beyond_view(self, match: Callable[[list[UINode]], list[UINode]]) -> list[UINode]:
        """``match`` on the whole page, also what is scrolled out of view."""
        driver = self.driver
        css = getattr(driver, "css_nodes", None)
        self._beyond = (lambda sel: css(sel, offscreen=True)) if css is not None else None
        try:
            return match(driver.tree_beyond_view())
        finally:
            self._beyond = None

    def _dropdown(self, screen: Screen, option: str, field: Target | None, rec: StepRecord) -> Located:
        t = self.clock()
        if field is not None:
            loc = self._field(screen, field, None, rec)
        elif screen.tree is not None:
            want = normalize(option)
            boxes = [n for n in screen.tree if n.options and want in {normalize(o) for o in n.options}]
            if len(boxes) != 1:
                what = "no dropdown offers" if not boxes else f"{len(boxes)} dropdowns offer"
                raise LocateError(
                    f"{what} {option!r}; name the dropdown with field:",
                    target=option,
                    candidates=[
                        n.describe() for n in (boxes or [n for n in screen.tree if n.role == "combobox"])
                    ],
                )
            loc = Located(boxes[0].box.center, "ui-tree", boxes[0].box, boxes[0])
        else:
            raise LocateError(f"say which dropdown holds {option!r} (field:)", target=option)
        rec.timings["locate"] = _ms(t, self.clock())
        self._agent.pipeline.note_location(rec, loc)
        return loc
