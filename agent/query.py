"""The locator language: what a step targets, as Playwright's locators say it.

A :class:`Query` names an element by what a user sees or what assistive technology reads — its text,
role and accessible name, label, placeholder, alt text, title, test id (or, on a web page, a CSS
selector) — narrowed by where it is: ``inside`` another element, an element that ``has_text`` or
``has`` another, ``right_of`` / ``left_of`` / ``above`` / ``below`` / ``near`` another, in the same
``row`` or ``column`` as another; ``nth`` picks one of several. Every driver with a UI tree (the browser's
DOM, Android's uiautomator, the desktop's AT-SPI) answers it from the tree; text-only queries fall back
to OCR on the pixels, where the relations are worked out from the boxes OCR read.

A text is matched as a user reads it: letter case and spacing do not matter, a whole-word part of a
longer text matches when nothing matches whole; ``exact: true`` asks for the whole text with its case;
``/pattern/i`` is a regular expression.

In a task file a target is the short form (``click: Save``, ``click: role=button[name="Save"]``) or a
mapping::

    click: {role: button, name: Delete, inside: {role: row, has_text: Alice}}
    type: {text: "42", into: {label: Quantity, below: Shipping}}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pixelpilot.agent.errors import ConfigError
from pixelpilot.drivers.base import Box, UINode
from pixelpilot.tools.ocr import normalize

__all__ = [
    "FIELD_ROLES",
    "RELATIONS",
    "CssLookup",
    "Query",
    "Target",
    "TextMatch",
    "box_in",
    "reading_order",
    "resolve",
]

log = logging.getLogger(__name__)

FIELD_ROLES = {"textbox", "searchbox", "combobox", "spinbutton"}
RELATIONS = ("right_of", "left_of", "above", "below", "near", "row", "column")
"""Layout relations to another element (its nearest match wins when several qualify)."""
NEAR_PX = 50.0
"""``near`` without ``distance``: within this many pixels (Playwright's default, in CSS pixels)."""
_REGEX = re.compile(r"^/(?P<body>.+)/(?P<flags>[imsx]*)$", re.S)
_ROLE_TARGET = re.compile(r'^role=(?P<role>[\w-]+)(?:\[name=(?P<q>["\'])(?P<name>.*)(?P=q)\])?$')


@dataclass(frozen=True)
class TextMatch:
    """How one text is matched: as a user reads it (default), ``exact``, or a regular expression."""

    raw: str
    exact: bool = False

    @property
    def regex(self) -> re.Pattern[str] | None:
        m = _REGEX.match(self.raw)
        if m is None:
            return None
        flags = 0
        for f in m["flags"]:
            flags |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[f]
        try:
            return re.compile(m["body"], flags)
        except re.error as exc:
            raise ConfigError(f"bad regular expression {self.raw!r}: {exc}") from None

    def score(self, value: str | None) -> int:
        """2: the whole text matches; 1: a whole-word part of it; 0: no match."""
        if not value:
            return 0
        rx = self.regex
        if rx is not None:
            return 2 if rx.search(value) else 0
        if self.exact:
            return 2 if " ".join(value.split()) == " ".join(self.raw.split()) else 0
        want, have = normalize(self.raw), normalize(value)
        if not want:
            return 0
        if have == want:
            return 2
        return 1 if re.search(r"(?<!\w)" + re.escape(want) + r"(?!\w)", have) else 0

    def best(self, values: Sequence[str | None]) -> int:
        return max((self.score(v) for v in values), default=0)


@dataclass(frozen=True)
class Query:
    """What to find. Fields left ``None`` do not constrain; all given ones must hold."""

    text: str | None = None
    """Visible text or accessible name."""
    role: str | None = None
    """ARIA-like role: button, link, textbox, checkbox, row, cell, listitem, menuitem, …"""
    name: str | None = None
    """Accessible name (with ``role``: Playwright's ``get_by_role(role, name=...)``)."""
    label: str | None = None
    """An input's label (its label element, aria-label, or the text right of / above it)."""
    placeholder: str | None = None
    alt: str | None = None
    """An image's alternative text."""
    title: str | None = None
    """The element's title (its tooltip)."""
    test_id: str | None = None
    """``data-testid`` on the web, the resource id on Android."""
    css: str | None = None
    """A CSS selector (web pages only)."""
    exact: bool = False
    inside: Query | None = None
    has_text: str | None = None
    has: Query | None = None
    right_of: Query | None = None
    left_of: Query | None = None
    above: Query | None = None
    below: Query | None = None
    near: Query | None = None
    row: Query | None = None
    """In the same row as (a table cell in the row of "Alice")."""
    column: Query | None = None
    """In the same column as (below a column header)."""
    distance: float | None = None
    """For the layout relations: at most this many pixels away (``near``: 50 unless given)."""
    nth: int | None = None
    """Which match: 1 the first in reading order (or the nearest, for a layout relation), -1 the last."""
    source: str | None = field(default=None, compare=False)
    """The short form this came from (kept for messages and the record)."""

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def of(cls, value: Target, *, where: str = "target") -> Query:
        """A query from the short text form, a mapping (a task file's), or a Query."""
        if isinstance(value, Query):
            return value
        if isinstance(value, str):
            if not value.strip():
                raise ConfigError(f"{where}: an empty target")
            m = _ROLE_TARGET.match(value.strip())
            if m:
                return cls(role=m["role"], name=m["name"], source=value)
            return cls(text=value, source=value)
        if isinstance(value, Mapping):
            return cls._from_mapping(value, where)
        raise ConfigError(f"{where}: a target is a text or a mapping, not {type(value).__name__}")

    @classmethod
    def _from_mapping(cls, value: Mapping[str, Any], where: str, *, complete: bool = True) -> Query:
        known = {f.name for f in fields(cls)} - {"source"}
        args: dict[str, Any] = {}
        for key, v in value.items():
            if key in ("first", "last"):
                if v is not True:
                    raise ConfigError(f"{where}.{key}: write {key}: true")
                args["nth"] = 1 if key == "first" else -1
                continue
            if key == "within":
                key = "inside"
            if key not in known:
                import difflib

                every = sorted(known | {"first", "last", "within"})
                hint = difflib.get_close_matches(str(key), every, n=1)
                raise ConfigError(
                    f"{where}: unknown key {key!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else f"; a target takes: {', '.join(every)}")
                )
            if key in ("inside", "has", *RELATIONS):
                args[key] = cls.of(v, where=f"{where}.{key}")
            elif key == "exact":
                if not isinstance(v, bool):
                    raise ConfigError(f"{where}.exact: true or false")
                args[key] = v
            elif key == "nth":
                if not isinstance(v, int) or isinstance(v, bool) or v == 0:
                    raise ConfigError(f"{where}.nth: 1 for the first match, 2 the second, -1 the last")
                args[key] = v
            elif key == "distance":
                if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
                    raise ConfigError(f"{where}.distance: a number of pixels")
                args[key] = float(v)
            else:
                if not isinstance(v, str | int | float) or isinstance(v, bool) or not str(v).strip():
                    raise ConfigError(f"{where}.{key}: a non-empty text")
                args[key] = str(v)
        q = cls(**args)
        if complete and not q._own_filters() and q.inside is None and not q._relations():
            raise ConfigError(f"{where}: say what to find (text, role, label, …)")
        for k, v in q._own_filters().items():  # a bad pattern fails here, with the task file's place
            if TextMatch(v).regex is not None:
                log.debug("%s.%s is a regular expression", where, k)
        return q

    def where(self, **kw: Any) -> Query:
        """This query with more constraints (the Python API's chaining); checked as a task file's are."""
        extra = Query._from_mapping(kw, "where", complete=False)
        given = {k: getattr(extra, k) for k in kw if k not in ("first", "last", "within")}
        if "first" in kw or "last" in kw:
            given["nth"] = extra.nth
        if "within" in kw:
            given["inside"] = extra.inside
        return replace(self, source=None, **given)

    @classmethod
    def build(cls, **kw: Any) -> Query:
        """A query from keyword arguments (the Python API), checked as a task file's mapping is."""
        return cls._from_mapping(kw, "find")

    # -- reading -----------------------------------------------------------------------------------
    def _own_filters(self) -> dict[str, str]:
        keys = ("text", "role", "name", "label", "placeholder", "alt", "title", "test_id", "css", "has_text")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def _relations(self) -> dict[str, Query]:
        return {k: getattr(self, k) for k in RELATIONS if getattr(self, k) is not None}

    @property
    def plain_text(self) -> str | None:
        """The text, when that is all this query says (the short form ``click: Save``)."""
        if self.text is not None and self == Query(text=self.text):
            return self.text
        return None

    @property
    def counts_nested(self) -> bool:
        """Whether a scope or an anchor picks one of several (``nth``): that counts on the whole page."""
        nested = [q for q in (self.inside, self.has, *self._relations().values()) if q is not None]
        return any(q.nth is not None or q.counts_nested for q in nested)

    @property
    def needs_tree(self) -> bool:
        """Whether only a UI tree can answer (roles, labels, ids): OCR reads text alone."""
        own = any(
            getattr(self, k)
            for k in ("role", "name", "label", "placeholder", "alt", "title", "test_id", "css", "has")
        )
        nested = [q for q in (self.inside, self.has, *self._relations().values()) if q is not None]
        return own or any(q.needs_tree for q in nested)

    def describe(self) -> str:
        """Playwright-like, for messages and the run record: ``role=button[name="Delete"] inside
        (role=row has "Alice")``."""
        if self.source is not None:
            return self.source
        parts: list[str] = []
        if self.role:
            parts.append(f"role={self.role}" + (f'[name="{self.name}"]' if self.name else ""))
        elif self.name:
            parts.append(f'name="{self.name}"')
        if self.text is not None:
            parts.append(f'"{self.text}"' if parts else self.text)
        for k in ("label", "placeholder", "alt", "title", "test_id", "css"):
            v = getattr(self, k)
            if v is not None:
                parts.append(f'{k}="{v}"')
        if self.exact:
            parts.append("exact")
        if self.has_text is not None:
            parts.append(f'has "{self.has_text}"')
        if self.has is not None:
            parts.append(f"has ({self.has.describe()})")
        if self.inside is not None:
            parts.append(f"inside ({self.inside.describe()})")
        for k, q in self._relations().items():
            parts.append(f"{k.replace('_', ' ')} ({q.describe()})")
        if self.distance is not None:
            parts.append(f"within {self.distance:g} px")
        if self.nth is not None:
            parts.append(f"nth={self.nth}")
        return " ".join(parts) or "anything"

    def as_dict(self) -> dict[str, Any]:
        """For the run record (JSON)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "source" or v is None or (f.name == "exact" and not v):
                continue
            out[f.name] = v.as_dict() if isinstance(v, Query) else v
        return out


Target = str | Query | Mapping[str, Any]
"""What the API takes wherever a step targets an element."""

CssLookup = Callable[[str], list[UINode]]


def describe(target: Target) -> str:
    """A target as the record and messages say it."""
    return Query.of(target).describe()


def as_param(target: Target | None) -> Any:
    """A target for the run record (JSON): the short form as written, else the query's fields."""
    if target is None or isinstance(target, str):
        return target
    return Query.of(target).as_dict()


def resolve(
    query: Query, tree: Sequence[UINode], *, act: bool = False, css: CssLookup | None = None
) -> list[UINode]:
    """The nodes of ``tree`` that ``query`` finds: in reading order, or nearest first for a layout
    relation. ``act``: the target is to be acted on (interactive elements win over plain text of
    the same name, and an open menu over what it covers). ``nth`` is not applied here."""
    from pixelpilot.agent.locate import _innermost, match_fields, match_nodes

    own = {k: v for k, v in query._own_filters().items() if k != "has_text"}
    plain = lambda v: not query.exact and TextMatch(v).regex is None  # noqa: E731 - read once, below
    if set(own) == {"text"} and plain(own["text"]):
        hits = match_nodes(tree, own["text"], act=act)  # the short form's rules, unchanged
    elif set(own) == {"label"} and plain(own["label"]):
        hits = match_fields(tree, own["label"])
    else:
        pool = list(tree) if query.css is None else _css(query.css, css)
        hits = [n for n in pool if _own_match(query, n)]
        hits = _innermost(_prefer_whole(query, hits))
        if act:
            hits = _acting(hits)
        hits = reading_order(hits)
    if query.has_text is not None:
        want = TextMatch(query.has_text, query.exact)
        hits = [
            n
            for n in hits
            if want.best([n.name, n.text, n.value, n.inner])
            or n.inner is None  # no text of its own known: what its box holds
            and any(
                m is not n and box_in(m.box, n.box) and want.best([m.name, m.text, m.value]) for m in tree
            )
        ]
    if query.inside is not None:
        scopes = _anchors(query.inside, tree, css)
        hits = [n for n in hits if any(n is not s and centre_in(n.box, s.box) for s in scopes)]
    if query.has is not None:
        inner = _anchors(query.has, tree, css)
        hits = [n for n in hits if any(i is not n and centre_in(i.box, n.box) for i in inner)]
    rel = {kind: _anchors(q, tree, css) for kind, q in query._relations().items()}
    if rel:
        ranked: list[tuple[float, UINode]] = []
        for n in hits:
            worst = 0.0
            for kind, anchors in rel.items():
                dists = [
                    d
                    for a in anchors
                    if a is not n and not box_in(a.box, n.box) and not box_in(n.box, a.box)
                    for d in [_relation(kind, n.box, a.box, query.distance)]
                    if d is not None
                ]
                if not dists:
                    break
                worst = max(worst, min(dists))
            else:
                ranked.append((worst, n))
        ranked.sort(key=lambda p: (p[0], p[1].box.y, p[1].box.x))
        hits = [n for _, n in ranked]
    return hits


def _anchors(q: Query, tree: Sequence[UINode], css: CssLookup | None) -> list[UINode]:
    """What a nested query (a scope, an anchor) finds, its own ``nth`` applied: ``inside: {css:
    .post, nth: 2}`` is inside the second post."""
    found = resolve(q, tree, css=css)
    if q.nth is None or not found:
        return found
    if q.nth > 0:
        return found[q.nth - 1 : q.nth]
    return found[q.nth :][:1] if -len(found) <= q.nth else []


def _other_own(q: Query, but: str) -> bool:
    return any(k != but for k in q._own_filters())


def _css(selector: str, css: CssLookup | None) -> list[UINode]:
    if css is None:
        raise ConfigError(f"css={selector!r}: CSS selectors work on web pages only (the browser driver)")
    try:
        return css(selector)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _own_match(q: Query, n: UINode) -> bool:
    if q.role is not None and n.role != q.role and not (q.role == "textbox" and n.role == "searchbox"):
        return False
    if q.name is not None and not TextMatch(q.name, q.exact).score(n.name):
        return False
    if q.text is not None and not TextMatch(q.text, q.exact).best([n.name, n.text, n.placeholder]):
        return False
    if q.label is not None and not (n.role in FIELD_ROLES and TextMatch(q.label, q.exact).score(n.name)):
        return False
    if q.placeholder is not None and not TextMatch(q.placeholder, q.exact).score(n.placeholder):
        return False
    if q.alt is not None and not (
        n.role in ("img", "button", "link") and TextMatch(q.alt, q.exact).score(n.name)
    ):
        return False
    if q.title is not None and not TextMatch(q.title, q.exact).score(n.title):
        return False
    # Android's resource ids are "package:id/name": the name alone is enough
    return q.test_id is None or q.test_id in (n.test_id, n.test_id.rsplit("/", 1)[-1])


def _prefer_whole(q: Query, hits: list[UINode]) -> list[UINode]:
    """Where some match the whole text (or name) and others only a word of it, the whole ones."""
    key = q.name if q.name is not None else q.text
    if key is None or len(hits) < 2:
        return hits
    m = TextMatch(key, q.exact)
    whole = [n for n in hits if m.best([n.name, n.text, n.placeholder]) == 2]
    return whole or hits


def _acting(hits: list[UINode]) -> list[UINode]:
    inter = [n for n in hits if n.interactive]
    hits = inter or hits
    if len(hits) > 1:
        top = max(n.layer for n in hits)
        hits = [n for n in hits if n.layer == top]
    return hits


def reading_order(nodes: list[UINode]) -> list[UINode]:
    return sorted(nodes, key=lambda n: (round(n.box.y / 4), n.box.x))


def centre_in(a: Box, b: Box) -> bool:
    """Whether ``a``'s centre lies in ``b``: an element is inside a scope even when it overflows it a
    little (text that sticks out, an SVG glyph) — the trees here are flat, with boxes."""
    cx, cy = a.x + a.width / 2, a.y + a.height / 2
    return b.x <= cx <= b.x + b.width and b.y <= cy <= b.y + b.height


def box_in(a: Box, b: Box, slack: float = 1.0) -> bool:
    return (
        a.x >= b.x - slack
        and a.y >= b.y - slack
        and a.x + a.width <= b.x + b.width + slack
        and a.y + a.height <= b.y + b.height + slack
    )


def _relation(kind: str, n: Box, a: Box, limit: float | None) -> float | None:
    """How far ``n`` is from the anchor ``a`` in relation ``kind``, or None when not in it. As in
    Playwright, right_of / left_of / above / below hold at any distance across (sorted by how far);
    ``row`` and ``column`` ask for the same row (the boxes overlap vertically) or column."""
    dx = max(a.x - (n.x + n.width), n.x - (a.x + a.width), 0.0)
    dy = max(a.y - (n.y + n.height), n.y - (a.y + a.height), 0.0)
    gap = (dx * dx + dy * dy) ** 0.5
    if kind == "right_of":
        ok = n.x >= a.x + a.width - 2
    elif kind == "left_of":
        ok = n.x + n.width <= a.x + 2
    elif kind == "below":
        ok = n.y >= a.y + a.height - 2
    elif kind == "above":
        ok = n.y + n.height <= a.y + 2
    elif kind == "row":
        n_cy, a_cy = n.y + n.height / 2, a.y + a.height / 2
        ok = abs(n_cy - a_cy) <= max(n.height, a.height) / 2
    elif kind == "column":
        n_cx, a_cx = n.x + n.width / 2, a.x + a.width / 2
        ok = abs(n_cx - a_cx) <= max(n.width, a.width) / 2
    else:  # near
        ok = gap <= (limit if limit is not None else NEAR_PX)
    if not ok or (limit is not None and gap > limit):
        return None
    return gap
