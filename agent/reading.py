"""Reading the screen through locators — an element's text or a field's value, how many elements
match, every match — and assertions that wait, as Playwright's ``expect`` does. :class:`Reading` is
that part of :class:`~pixelpilot.agent.session.Agent`; :class:`Elements` is a query bound to an agent
(``agent.find(role="row", has_text="Alice").find(role="button", name="Delete").click()``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from pixelpilot.agent.errors import CheckFailed, ConfigError, LocateError, StepFailed
from pixelpilot.agent.locate import Located, Locator, pick_located
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.agent.query import Query, Target, TextMatch, as_param, box_in, reading_order, resolve
from pixelpilot.drivers.base import Box, Revealer, Screen, UINode
from pixelpilot.tools import actions as A

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["STATES", "Element", "Elements", "Reading", "element_text"]

State = Literal["visible", "hidden", "gone", "enabled", "disabled", "checked", "unchecked"]
STATES: tuple[str, ...] = ("visible", "hidden", "gone", "enabled", "disabled", "checked", "unchecked")
"""``hidden``: nothing matching is on the screen; ``gone``: nor anywhere a scroll could bring it from."""


@dataclass(frozen=True)
class Element:
    """One match of a locator, as read from the screen."""

    role: str
    name: str
    text: str
    value: str | None
    checked: bool | None
    enabled: bool
    box: tuple[float, float, float, float]
    """x, y, width, height in screenshot pixels."""
    source: str
    """Who found it: ui-tree or ocr."""


def element_text(node: UINode, tree: Sequence[UINode]) -> str:
    """What an element shows: its text or accessible name; for a container (a row, a list item, a
    form), the texts inside it in reading order."""
    if node.name or node.text:
        return node.name or node.text
    if node.inner:
        return node.inner
    inner = [n for n in tree if n is not node and n.text and box_in(n.box, node.box)]
    if inner:
        return " ".join(n.text for n in reading_order(inner))
    return node.value or ""


def _query(target: Target | Elements | None, kw: dict[str, Any]) -> Query:
    """A query from the Python API's arguments: a target and/or keywords (nested ones may be texts,
    mappings, queries or :class:`Elements`)."""
    args = {k: (v.query if isinstance(v, Elements) else v) for k, v in kw.items()}
    if target is None:
        return Query.build(**args)
    base = target.query if isinstance(target, Elements) else Query.of(target)
    return base.where(**args) if args else base


class Reading:
    """Mixed into :class:`~pixelpilot.agent.session.Agent` (which sets these up)."""

    locator: Locator

    @property
    def _me(self) -> Agent:
        return cast("Agent", self)

    # -- locators ----------------------------------------------------------------------------------
    def find(self, target: Target | None = None, **kw: Any) -> Elements:
        """A locator bound to this agent: ``agent.find("Save")``, ``agent.find(role="button",
        name="Save")``, ``agent.find(label="Email")``; narrow it with ``.find()``, ``.filter()``,
        ``.nth()``; act, read or assert through it. Nothing is looked up until then."""
        return Elements(self._me, _query(target, kw))

    # -- reading -----------------------------------------------------------------------------------
    def _one(self, screen: Screen, rec: StepRecord, q: Query, nth: int | None) -> Located:
        me = self._me
        t = me.clock()
        loc = me._find_element(screen, rec, q, nth)
        rec.timings["locate"] = _ms(t, me.clock())
        me.pipeline.note_location(rec, loc)
        return loc

    def text(self, target: Target, *, nth: int | None = None) -> str:
        """The text an element shows (for a row or a list item, the texts inside it), read from the UI
        tree, or by OCR where there is none. Recorded as a ``read`` step."""
        q = Query.of(target)
        out: list[str] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            loc = self._one(screen, rec, q, nth)
            if loc.node is not None:
                tree = screen.tree if loc.source == "ui-tree" and screen.tree is not None else [loc.node]
                out.append(element_text(loc.node, tree))
            else:
                out.append(self._ocr_text(screen, loc.box))
            rec.result = {"text": out[0]}

        self._me.pipeline.run("read", q.describe(), {"target": as_param(target), "what": "text"}, body)
        return out[0]

    def _ocr_text(self, screen: Screen, box: Box | None) -> str:
        if box is None:
            return ""
        lines = [t for t in self.locator.ocr(screen) if t.kind == "line" and box_in(Box(*t.box), box, 3)]
        return " ".join(t.text for t in sorted(lines, key=lambda t: (round(t.box[1] / 4), t.box[0])))

    def value(self, target: Target, *, nth: int | None = None) -> str | None:
        """What a field holds (its value; a dropdown's chosen option), by its label, placeholder or any
        locator. Needs a UI tree. Recorded as a ``read`` step."""
        q = Query.of(target)
        out: list[str | None] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            me = self._me
            loc = me._field(screen, q, nth, rec)
            me.pipeline.note_location(rec, loc)
            if loc.node is None:
                raise LocateError(
                    f"the value of {q.describe()} needs a UI tree (OCR reads text, not a field's value)",
                    target=q.describe(),
                )
            out.append(loc.node.value)
            rec.result = {"value": loc.node.value}

        self._me.pipeline.run("read", q.describe(), {"target": as_param(target), "what": "value"}, body)
        return out[0]

    def _everywhere(self, screen: Screen, q: Query) -> list[Located]:
        """Every match on the page, also those scrolled out of view (as Playwright counts the DOM),
        where the driver can tell; else every match on the screen."""
        me = self._me
        if screen.tree is not None and isinstance(me.driver, Revealer):
            nodes = me._beyond_view(lambda tree: resolve(q, tree, css=me._css))
            return [Located(n.box.center, "ui-tree", n.box, n, len(nodes)) for n in nodes]
        found, _ = self.locator.matches(screen, q, css=me._css)
        return found

    def count(self, target: Target) -> int:
        """How many elements match, on the whole page where the driver can see past the view (0 is
        an answer, not an error). Recorded as a ``read`` step."""
        q = Query.of(target)
        out: list[int] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            found = self._everywhere(screen, q)
            out.append(len(found))
            rec.result = {"count": len(found)}

        self._me.pipeline.run("read", q.describe(), {"target": as_param(target), "what": "count"}, body)
        return out[0]

    def all(self, target: Target) -> list[Element]:
        """Every match (on the whole page, as :meth:`count`), in reading order (nearest first for a
        layout relation), with its text, role, value, state and box. Recorded as a ``read`` step."""
        q = Query.of(target)
        out: list[Element] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            for loc in self._everywhere(screen, q):
                out.append(self._element(screen, loc))
            rec.result = {"count": len(out), "texts": [e.text for e in out][:50]}

        self._me.pipeline.run("read", q.describe(), {"target": as_param(target), "what": "all"}, body)
        return out

    def _element(self, screen: Screen, loc: Located) -> Element:
        box = cast(
            "tuple[float, float, float, float]", tuple(loc.box.as_list()) if loc.box else (*loc.point, 0, 0)
        )
        n = loc.node
        if n is None:
            return Element("text", "", self._ocr_text(screen, loc.box), None, None, True, box, loc.source)
        text = element_text(n, screen.tree or [n])
        return Element(n.role, n.name, text, n.value, n.checked, n.enabled, box, loc.source)

    # -- assertions that wait ------------------------------------------------------------------------
    def expect(
        self,
        target: Target,
        *,
        text: str | None = None,
        value: str | None = None,
        count: int | None = None,
        state: State | None = None,
        timeout: float | None = None,
    ) -> StepRecord:
        """Assert, retrying until ``timeout`` (the wait timeout by default), that ``target``: has the
        ``text`` (the whole text as a user reads it, ``exact``, or ``/regex/``), the ``value``, matches
        ``count`` elements, or is in ``state`` (visible, hidden, gone, enabled, disabled, checked,
        unchecked). A failure is :class:`CheckFailed` that says what was seen instead."""
        return self._wait(target, "expect", text=text, value=value, count=count, state=state, timeout=timeout)

    def _wait(
        self,
        target: Target,
        kind: str,
        *,
        text: str | None = None,
        value: str | None = None,
        count: int | None = None,
        state: str | None = None,
        timeout: float | None = None,
    ) -> StepRecord:
        me = self._me
        q = Query.of(target)
        asks = {
            k: v
            for k, v in (("text", text), ("value", value), ("count", count), ("state", state))
            if v is not None
        }
        if len(asks) > 1:
            raise ConfigError(f"{kind}: one of text, value, count or state at a time")
        if state is not None and state not in STATES:
            raise ConfigError(f"{kind}: state is one of {', '.join(STATES)}, not {state!r}")
        if count is not None and count < 0:
            raise ConfigError(f"{kind}: count is 0 or more")
        if not asks:
            state = "visible"
        limit = me.settings.wait_timeout if timeout is None else timeout
        what = q.describe() + "".join(f" {k}={v!r}" for k, v in asks.items())

        def body(screen: Screen, rec: StepRecord) -> None:
            start = me.clock()
            current, polls = screen, 0
            while True:
                ok, seen = self._holds(current, q, text=text, value=value, count=count, state=state)
                if ok:
                    rec.result = {"waited_ms": _ms(start, me.clock()), "polls": polls, "seen": seen}
                    if polls:
                        me.pipeline.save_after(rec)
                    return
                if me.clock() - start >= limit:
                    me.pipeline.save_after(rec)
                    rec.result = {"seen": seen}
                    wanted = f"{q.describe()} " + (
                        f"to be {state}" if state else " ".join(f"to have {k} {v!r}" for k, v in asks.items())
                    )
                    msg = f"expected {wanted}" + (f" within {limit:g} s" if limit else "") + f", but {seen}"
                    if kind in ("expect", "see"):
                        raise CheckFailed(msg, reason=seen)
                    raise StepFailed(msg)
                me.sleep(me.settings.poll_interval)
                polls += 1
                current = me.pipeline.poll_screen()

        params = {"target": as_param(target), **asks, "timeout": limit}
        return me.pipeline.run(kind, what, params, body)

    def _holds(
        self,
        screen: Screen,
        q: Query,
        *,
        text: str | None,
        value: str | None,
        count: int | None,
        state: str | None,
    ) -> tuple[bool, str]:
        """Whether the expectation holds on ``screen``, and what was seen (for the message)."""
        me = self._me
        found, _ = self.locator.matches(screen, q, css=me._css)
        if count is not None:
            return len(found) == count, f"{len(found)} matched"
        if state in ("hidden", "gone"):
            if found:
                return False, f"it is visible: {_desc(found[0])}"
            if state == "gone" and screen.tree is not None and isinstance(me.driver, Revealer):
                beyond = resolve(q, me.driver.tree_beyond_view(), css=me._css)
                if beyond:
                    return False, f"it is still on the page, out of view: {beyond[0].describe()}"
            return True, "nothing matches"
        if not found:
            return False, "nothing matches"
        try:
            loc = pick_located(found, q, q.nth)
        except LocateError as exc:
            return False, str(exc).splitlines()[0]
        n = loc.node
        if state == "visible" or state is None and text is None and value is None:
            return True, _desc(loc)
        if n is None:
            if text is not None:
                got = self._ocr_text(screen, loc.box)
                return TextMatch(text).score(got) == 2, f"its text is {got!r}"
            raise LocateError(f"{state or 'value'} needs a UI tree (OCR sees only text)", target=q.describe())
        if state in ("enabled", "disabled"):
            return n.enabled == (
                state == "enabled"
            ), f"{n.describe()} is {'enabled' if n.enabled else 'disabled'}"
        if state in ("checked", "unchecked"):
            if n.checked is None:
                return False, f"{n.describe()} cannot be checked"
            return n.checked == (
                state == "checked"
            ), f"{n.describe()} is {'checked' if n.checked else 'unchecked'}"
        if text is not None:
            got = element_text(n, screen.tree or [n])
            return TextMatch(text, q.exact).score(got) == 2, f"its text is {got!r}"
        got_v = n.value or ""
        m = TextMatch(value or "", exact=True)
        return m.score(got_v) == 2 or (m.regex is None and got_v == value), f"its value is {got_v!r}"

    # -- acting on states -----------------------------------------------------------------------------
    def set_checked(self, target: Target, checked: bool = True, *, nth: int | None = None) -> StepRecord:
        """Check (or uncheck) a checkbox, radio button or switch: clicked only when it is not so
        already, then read back (where there is a UI tree) — a click that did not change it fails."""
        me = self._me
        q = Query.of(target)

        def body(screen: Screen, rec: StepRecord) -> None:
            loc = me._locate(screen, q, nth, rec)
            node = loc.node
            if node is not None and node.checked is not None and node.checked == checked:
                rec.effect = "unchanged"
                rec.result = {"checked": checked, "already": True}
                return
            me.pipeline.act(rec, A.Click(at=me.pipeline.hit(loc, q.describe())))
            if node is None or screen.tree is None:
                return
            after = [
                n for n in resolve(q, me.pipeline.poll_screen().tree or [], act=True) if n.box == node.box
            ]
            now = after[0].checked if after else None
            rec.result = {"checked": now}
            if now is not None and now != checked:
                raise StepFailed(f"clicking {node.describe()} did not {'check' if checked else 'uncheck'} it")

        return me.pipeline.run(
            "check_box" if checked else "uncheck_box",
            q.describe(),
            {"target": as_param(target), "nth": nth},
            body,
        )

    def scroll_into_view(self, target: Target, *, nth: int | None = None) -> StepRecord:
        """Scroll ``target`` into view (inside the scrolling box that holds it, and the page): nothing
        happens when it is in view already."""
        me = self._me
        q = Query.of(target)

        def body(screen: Screen, rec: StepRecord) -> None:
            self._one(screen, rec, q, nth)

        return me.pipeline.run(
            "scroll_into_view", q.describe(), {"target": as_param(target), "nth": nth}, body
        )


def _desc(loc: Located) -> str:
    return loc.node.describe() if loc.node else f"text at {loc.box.as_list() if loc.box else loc.point}"


class Elements:
    """A locator bound to an agent, as Playwright's ``Locator``: nothing is looked up until it acts,
    reads or asserts, and each of those is one recorded step."""

    def __init__(self, agent: Agent, query: Query) -> None:
        self.agent = agent
        self.query = query

    def __repr__(self) -> str:
        return f"<Elements {self.query.describe()}>"

    # -- narrowing ---------------------------------------------------------------------------------
    def find(self, target: Target | None = None, **kw: Any) -> Elements:
        """The elements inside these that match (chaining)."""
        inner = _query(target, kw)
        if inner.inside is not None:
            raise ConfigError("find() inside a locator: give inside= on the outer one")
        return Elements(self.agent, inner.where(inside=self.query))

    def filter(self, *, has_text: str | None = None, has: Target | Elements | None = None) -> Elements:
        """These, kept when they show ``has_text`` or hold an element matching ``has``."""
        kw: dict[str, Any] = {}
        if has_text is not None:
            kw["has_text"] = has_text
        if has is not None:
            kw["has"] = has.query if isinstance(has, Elements) else Query.of(has)
        return Elements(self.agent, self.query.where(**kw))

    def nth(self, index: int) -> Elements:
        """The ``index``-th match (1 the first, -1 the last)."""
        if index == 0:
            raise ConfigError("nth: 1 is the first match, -1 the last")
        return Elements(self.agent, self.query.where(nth=index))

    @property
    def first(self) -> Elements:
        return self.nth(1)

    @property
    def last(self) -> Elements:
        return self.nth(-1)

    # -- acting -----------------------------------------------------------------------------------
    def click(self) -> StepRecord:
        return self.agent.click(self.query)

    def double_click(self) -> StepRecord:
        return self.agent.double_click(self.query)

    def right_click(self) -> StepRecord:
        return self.agent.right_click(self.query)

    def hover(self) -> StepRecord:
        return self.agent.hover(self.query)

    def type(self, text: str, *, clear: bool = True) -> StepRecord:
        """Type into this field (replacing what it holds unless ``clear=False``)."""
        return self.agent.type(text, into=self.query, clear=clear)

    def select(self, option: str) -> StepRecord:
        return self.agent.select(option, field=self.query)

    def check(self) -> StepRecord:
        return self.agent.set_checked(self.query, True)

    def uncheck(self) -> StepRecord:
        return self.agent.set_checked(self.query, False)

    def scroll_into_view(self) -> StepRecord:
        return self.agent.scroll_into_view(self.query)

    # -- reading ----------------------------------------------------------------------------------
    def text(self) -> str:
        return self.agent.text(self.query)

    def value(self) -> str | None:
        return self.agent.value(self.query)

    def count(self) -> int:
        return self.agent.count(self.query)

    def all(self) -> list[Element]:
        return self.agent.all(self.query)

    # -- waiting and asserting --------------------------------------------------------------------
    def wait_for(self, state: State = "visible", *, timeout: float | None = None) -> StepRecord:
        return self.agent.wait_for(self.query, state=state, timeout=timeout)

    def expect(self, **kw: Any) -> StepRecord:
        """``.expect(text=...)``, ``value=``, ``count=``, ``state=`` (see :meth:`Reading.expect`)."""
        return self.agent.expect(self.query, **kw)
