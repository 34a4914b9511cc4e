"""The locator chain: turn a target ("Sign in", "the search box", an image) into a point on screen.

Order: UI tree (a unique text or accessible-name match) → OCR (the text found on screen) → image
template → the model (Qwen3-VL grounding). Each answer says which locator gave it. Several matches
are an error listing the candidates, unless the step says which one (``nth``).
"""

from __future__ import annotations

import difflib
import re
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from pixelpilot.agent.errors import LocateError
from pixelpilot.agent.query import FIELD_ROLES, CssLookup, Query, Target, box_in, reading_order, resolve
from pixelpilot.drivers.base import Box, Screen, UINode
from pixelpilot.tools.ocr import OcrEngine, OcrText, find_text, normalize

__all__ = ["Located", "Locator", "match_fields", "match_nodes", "pick", "pick_located", "text_on_screen"]

Point = tuple[int, int]
TEMPLATE_SCALES = (0.5, 0.67, 0.75, 0.8, 0.9, 1.0, 1.1, 1.25, 1.33, 1.5, 2.0)
"""Sizes, relative to the picture file, at which an image target is looked for."""
T = TypeVar("T")


@dataclass(frozen=True)
class Located:
    """Where a target is: a point (and box when known) in screenshot pixels, and who found it."""

    point: Point
    source: str
    box: Box | None = None
    node: UINode | None = None
    matches: int = 1


@dataclass
class Locator:
    """Resolves targets against a :class:`Screen`. ``ocr`` may be disabled or injected."""

    use_ocr: bool = True
    ocr_engine: Callable[[], OcrEngine] = OcrEngine.shared
    _ocr_cache: weakref.WeakKeyDictionary[Screen, list[OcrText]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )

    def ocr(self, screen: Screen) -> list[OcrText]:
        """OCR of ``screen``, read once per frame (kept only while the frame is alive)."""
        if screen not in self._ocr_cache:
            self._ocr_cache[screen] = self.ocr_engine().read(screen.image)
        return self._ocr_cache[screen]

    # -- element targets -------------------------------------------------------------------------
    def text(
        self, screen: Screen, target: Target, *, nth: int | None = None, css: CssLookup | None = None
    ) -> Located:
        """Find an element to act on: a visible text or accessible name, or any :class:`Query`.
        ``nth`` (1-based, reading order; -1 the last) picks among several."""
        q = Query.of(target)
        found, tried = self.matches(screen, q, act=True, css=css)
        if found:
            return pick_located(found, q, nth if nth is not None else q.nth)
        raise self.not_found(screen, q, tried, css)

    def matches(
        self, screen: Screen, q: Query, *, act: bool = False, css: CssLookup | None = None
    ) -> tuple[list[Located], list[str]]:
        """Every match of ``q`` (reading order, or nearest first for a layout relation) from the first
        source that has any — the UI tree, then OCR (text only: roles, labels and ids need a tree) —
        and the sources looked in."""
        tried: list[str] = []
        if screen.tree is not None:
            nodes = resolve(q, screen.tree, act=act, css=css)
            if nodes:
                return [Located(n.box.center, "ui-tree", n.box, n, len(nodes)) for n in nodes], tried
            tried.append("ui-tree")
        if self.use_ocr and not q.needs_tree and screen.width > 0:  # (a poll reads the tree alone)
            if q.plain_text is not None:
                found = sorted(find_text(self.ocr(screen), q.plain_text), key=lambda t: (t.box[1], t.box[0]))
                hits = [Located(t.center, "ocr", Box(*t.box), None, len(found)) for t in found]
            else:
                nodes = resolve(q, self.ocr_nodes(screen), act=act)
                hits = [Located(n.box.center, "ocr", n.box, None, len(nodes)) for n in nodes]
            if hits:
                return hits, tried
            tried.append("ocr")
        return [], tried

    def ocr_nodes(self, screen: Screen) -> list[UINode]:
        """OCR's lines and words as text nodes: layout relations and scopes work on them as on a tree."""
        return [
            UINode(ref=f"ocr{i}", role="text", name=t.text, text=t.text, box=Box(*t.box))
            for i, t in enumerate(self.ocr(screen))
        ]

    def not_found(
        self, screen: Screen, q: Query, tried: list[str], css: CssLookup | None = None
    ) -> LocateError:
        where = ", ".join(tried) or "nothing"
        what = (
            f"no element with the text {q.plain_text!r} is visible"
            if q.plain_text is not None
            else f"nothing matches {q.describe()}"
        )
        if q.needs_tree and screen.tree is None:
            where += "; roles, labels and ids need a UI tree, which this screen has not"
        key = q.plain_text or q.text or q.name or q.label or q.placeholder or q.alt or q.title or ""
        near = [] if q.needs_tree and screen.tree is None else self.similar(screen, key, q, css)
        return LocateError(f"{what} (looked in: {where})", target=q.describe(), candidates=near)

    def image(self, screen: Screen, path: str, *, nth: int | None = None, threshold: float = 0.9) -> Located:
        """Find a picture (a file cut from a screenshot) on screen by template matching, at the picture's
        size and at the sizes it would have cut at another zoom or screen density (½× to 2×)."""
        from pixelpilot.tools.template import find_template, load_template

        try:
            tpl = load_template(path)
        except FileNotFoundError as exc:
            raise LocateError(str(exc), target=str(path)) from None
        # the picture may have been cut at another zoom or on another screen density: a range of scales
        scales = sorted({round(k * s, 3) for k in TEMPLATE_SCALES for s in {1.0, screen.scale}})
        hits = sorted(
            find_template(screen.image, tpl, threshold=threshold, scales=scales),
            key=lambda m: (m.box[1], m.box[0]),
        )
        if not hits:
            best = find_template(screen.image, tpl, threshold=0.0, scales=scales, limit=1)
            near = (
                [f"best match {best[0].score:.2f} at {best[0].box[:2]} (threshold {threshold})"]
                if best
                else []
            )
            raise LocateError(f"the image {path} is not on screen", target=str(path), candidates=near)
        hit = pick(hits, str(path), nth, [f"match {m.score:.2f} at {m.box}" for m in hits])
        return Located(hit.center, "template", Box(*hit.box), None, len(hits))

    def field(
        self, screen: Screen, label: Target, *, nth: int | None = None, css: CssLookup | None = None
    ) -> Located:
        """Find an input by its label, accessible name or placeholder (a text), or by any query."""
        q = Query.of(label)
        if q.plain_text is None:
            return self.text(screen, q, nth=nth, css=css)
        if screen.tree is not None:
            nodes = match_fields(screen.tree, q.plain_text)
            if nodes:
                return pick_located(
                    [Located(n.box.center, "ui-tree", n.box, n, len(nodes)) for n in nodes], q, nth
                )
            fields = [n for n in screen.tree if n.role in FIELD_ROLES]
            raise LocateError(
                f"no input field labelled {q.plain_text!r}",
                target=q.plain_text,
                candidates=[n.describe() for n in fields][:8] or self.similar(screen, q.plain_text),
            )
        # No UI tree: the field is the box right of, or below, its label text.
        return self.text(screen, q, nth=nth)

    def similar(
        self, screen: Screen, target: str, scope: Query | None = None, css: CssLookup | None = None
    ) -> list[str]:
        """The few visible texts most like ``target`` (within ``scope``'s ``inside`` when it has one),
        for error messages: never the whole screen."""
        texts: list[str] = []
        if screen.tree is not None:
            nodes: Sequence[UINode] = screen.tree
            if scope is not None and scope.inside is not None:
                boxes = [n.box for n in resolve(scope.inside, screen.tree, css=css)]
                nodes = [n for n in nodes if any(box_in(n.box, b) for b in boxes)] or nodes
            texts = [n.name or n.text or n.placeholder for n in nodes]
        elif self.use_ocr:
            texts = [t.text for t in self.ocr(screen) if t.kind == "line"]
        texts = list(dict.fromkeys(t for t in texts if t))
        if not target:
            return [repr(t) for t in texts[:8]]
        close = difflib.get_close_matches(target, texts, n=8, cutoff=0.4)
        low = normalize(target)
        close += [t for t in texts if low and low in normalize(t) and t not in close]
        return [repr(t) for t in close[:8]]


def pick_located(found: list[Located], q: Query, nth: int | None) -> Located:
    """One of the matches: ``nth`` (1-based; -1 the last), else the only one — or, for a layout
    relation (right_of, below, …), the nearest."""
    described = [
        f"{loc.node.describe() if loc.node else _box_desc(loc)}  → nth: {i}" for i, loc in enumerate(found, 1)
    ]
    if nth is None and q._relations() and len(found) > 1:
        nth = 1  # nearest first
    return pick(found, q.describe(), nth, described)


def _box_desc(loc: Located) -> str:
    if loc.box is None:
        return f"at {loc.point}"
    x, y, w, h = loc.box.as_list()
    return f"text at ({x:.0f},{y:.0f} {w:.0f}x{h:.0f}) [{loc.source}]"


def pick(items: Sequence[T], target: str, nth: int | None, described: list[str]) -> T:
    if nth is not None and nth < 0 and -len(items) <= nth:
        return items[nth]
    if nth is not None:
        if not 1 <= nth <= len(items):
            raise LocateError(
                f"asked for match #{nth} of {target!r}, but there are {len(items)}",
                target=target,
                candidates=described,
                kind="ambiguous",
            )
        return items[nth - 1]
    if len(items) > 1:
        raise LocateError(
            f"{target!r} is ambiguous: {len(items)} elements match (say which one with nth: 1..{len(items)})",
            target=target,
            candidates=described,
            kind="ambiguous",
        )
    return items[0]


def _contains_words(hay: str, want: str) -> bool:
    return bool(want) and re.search(r"(?<!\w)" + re.escape(want) + r"(?!\w)", hay) is not None


def _labels(n: UINode) -> list[str]:
    return [normalize(s) for s in (n.name, n.text, n.placeholder) if s]


def _order(n: UINode) -> int:
    return int(n.ref) if n.ref.isdigit() else 0


def _innermost(nodes: list[UINode]) -> list[UINode]:
    """Drop matches that merely contain another match (a list item around its link), and plain text
    sitting on an interactive match (a button's own span)."""
    keep = []
    for n in nodes:
        drop = False
        for m in nodes:
            if m is n:
                continue
            if m.box == n.box or (box_in(m.box, n.box) and box_in(n.box, m.box)):
                drop = (m.interactive, _order(m)) > (n.interactive, _order(n))
            elif box_in(m.box, n.box):
                drop = m.interactive or not n.interactive
            elif box_in(n.box, m.box):
                drop = m.interactive and not n.interactive
            if drop:
                break
        if not drop:
            keep.append(n)
    return keep or nodes


_ROLE_TARGET = re.compile(r'^role=(?P<role>[\w-]+)(?:\[name=(?P<q>["\'])(?P<name>.*)(?P=q)\])?$')


def match_nodes(tree: Sequence[UINode], target: str, *, act: bool = False) -> list[UINode]:
    """UI-tree nodes matching ``target``: exact name/text first, then whole-word containment.
    Interactive elements win over plain text, innermost elements over their containers; among
    several, those matching with the same letter case win. ``role=textbox`` or
    ``role=button[name="Save"]`` (Playwright's syntax) selects by role. ``act``: the target is to be
    acted on (clicked, hovered): when some matches are interactive, plain text matching as well (a
    heading "Sign in" over the form's "Sign in" button) is not a candidate."""
    role = _ROLE_TARGET.match(target.strip())
    if role:
        hits = [n for n in tree if n.role == role["role"]]
        if role["name"] is not None:
            hits = [n for n in hits if normalize(n.name) == normalize(role["name"])]
        return reading_order(hits)
    want = normalize(target)
    if not want:
        return []
    for test in (lambda s: s == want, lambda s: _contains_words(s, want)):
        hits = [n for n in tree if any(test(s) for s in _labels(n))]
        if hits:
            inter = [n for n in hits if n.interactive]
            if inter:
                # a label's text also names its input: the input is the target then
                hits = inter + [
                    n
                    for n in hits
                    if not act
                    and not n.interactive
                    and not any(box_in(n.box, m.box) for m in inter)
                    and n.role != "label"
                ]
            hits = _innermost(hits)
            if len(hits) > 1:
                cased = " ".join(target.split())
                same_case = [
                    n
                    for n in hits
                    if any(" ".join(s.split()) == cased for s in (n.name, n.text, n.placeholder))
                ]
                hits = same_case or hits
            if act and len(hits) > 1:
                top = max(n.layer for n in hits)  # an open menu over its window
                hits = [n for n in hits if n.layer == top]
            return reading_order(hits)
    return []


def match_fields(tree: Sequence[UINode], label: str) -> list[UINode]:
    """Input fields named ``label`` (label element, aria-label, placeholder), or next to a text
    ``label`` (right of it on the same row, or just below)."""
    want = normalize(label)
    fields = [n for n in tree if n.role in FIELD_ROLES]
    for test in (lambda s: s == want, lambda s: _contains_words(s, want)):
        hits = [n for n in fields if any(test(s) for s in _labels(n))]
        if hits:
            return reading_order(hits)
    texts = [n for n in tree if n.role not in FIELD_ROLES and normalize(n.name or n.text) == want]
    near: list[UINode] = []
    for t in texts:
        best = None
        for f in fields:
            right = (
                abs((f.box.y + f.box.height / 2) - (t.box.y + t.box.height / 2)) < max(t.box.height, 12)
                and f.box.x >= t.box.x + t.box.width - 2
            )
            below = 0 <= f.box.y - (t.box.y + t.box.height) < 40 and abs(f.box.x - t.box.x) < 60
            if right or below:
                d = (f.box.x - t.box.x) + (f.box.y - t.box.y)
                if best is None or d < best[0]:
                    best = (d, f)
        if best is not None and best[1] not in near:
            near.append(best[1])
    return near


def text_on_screen(screen: Screen, text: str, locator: Locator) -> bool:
    """Whether ``text`` is visible: in the UI tree when there is one (names, texts, field values),
    else on the pixels by OCR."""
    want = normalize(text)
    if screen.tree is not None:
        return any(
            s == want or _contains_words(s, want)
            for n in screen.tree
            for s in [*_labels(n), normalize(n.value or "")]
        )
    return locator.use_ocr and bool(find_text(locator.ocr(screen), text))
