"""The Agent: the public object for scripted and model-driven steps.

Each method is one step: observe → locate → act → settle → verify → record. Steps are kept in
``agent.steps`` and, when the agent records a run, appended to its ``steps.jsonl`` as they end.

>>> with BrowserDriver.launch() as d:                        # doctest: +SKIP
...     agent = Agent(d)
...     agent.open("http://127.0.0.1:8000/login")
...     agent.type("alice", into="Username")
...     agent.click("Sign in")
...     agent.see("Welcome, alice")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.base import Driver, ElementDriver, FocusReader, Navigable, Screen, Settling, UINode
from drivers.keys import parse_combo
from tools import actions as A
from tools.ocr import normalize

from . import cached, loop
from .cache import StepCache
from .errors import CheckFailed, DriverError, LocateError, PixelPilotError, StepFailed
from .locate import Located, Locator, text_on_screen
from .loop import Limits, RunResult, Verdict
from .memory import StepRecord
from .memory import elapsed_ms as _ms
from .models.base import VisionModel
from .runlog import RunWriter

__all__ = ["Agent", "AgentSettings"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """Timeouts and behaviour of scripted steps. Seconds unless named otherwise."""

    settle_timeout: float = 3.0
    wait_timeout: float = 10.0
    poll_interval: float = 0.2
    nav_timeout: float = 30.0
    retry_no_effect: bool = True
    verify_typing: bool = True
    use_ocr: bool = True
    max_steps: int = 15
    """Default step budget of ``run``/``iter``."""
    use_model: Literal["fallback", "never", "only"] = "fallback"
    """When text targets go to the model: after the UI tree and OCR fail, never, or straight away."""


class Agent:
    """Drives one :class:`~drivers.base.Driver`. Pass ``output=`` (or a ``recorder=``) to record a run
    directory; use the agent as a context manager to close the run when done."""

    def __init__(
        self,
        driver: Driver,
        *,
        model: VisionModel | str | None = None,
        cache: StepCache | None = None,
        settings: AgentSettings | None = None,
        output: str | Path | None = None,
        recorder: RunWriter | None = None,
        task: str = "session",
        locator: Locator | None = None,
        on_step: Callable[[StepRecord], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.driver = driver
        if isinstance(model, str):
            from .models import load_model

            model = load_model(model)
        self.model: VisionModel | None = model
        self.model_calls = 0
        self.cache = cache
        self.settings = settings or AgentSettings()
        self.locator = locator or Locator(use_ocr=self.settings.use_ocr)
        if recorder is None and output is not None:
            meta = {
                "driver": getattr(driver, "name", type(driver).__name__),
                "model": getattr(model, "name", None),
            }
            recorder = RunWriter(output, task, meta=meta)
        self.recorder = recorder
        self.steps: list[StepRecord] = []
        self.on_step = on_step
        self._clock, self._sleep = clock, sleep
        self._unsettled = False
        """An action taken from the cache did not wait for the screen to settle: the next step's
        check against the cache does (only when the screen does not match yet), or settles first."""

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self, status: str | None = None, *, error: str | None = None) -> None:
        """Finish the run directory (if any). ``status`` defaults to passed unless a step failed."""
        if self._unsettled:
            self._catch_up(None)
        if self.recorder is not None and not self.recorder.finished:
            if status is None:
                outcomes = {s.outcome for s in self.steps}
                status = "error" if "error" in outcomes else "failed" if outcomes - {"passed"} else "passed"
            self.recorder.finish(status, error=error)

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("interrupted", error="interrupted by the user (Ctrl-C)")
        elif issubclass(exc_type, DriverError):
            self.close("error", error=str(exc))
        elif issubclass(exc_type, PixelPilotError):
            self.close("failed", error=str(exc))
        else:
            self.close("error", error=f"{exc_type.__name__}: {exc}")

    # -- scripted steps ------------------------------------------------------------------------------
    def open(self, url: str) -> StepRecord:
        """Open ``url`` (browser drivers)."""

        def body(_: Screen, rec: StepRecord) -> None:
            if not isinstance(self.driver, Navigable):
                raise DriverError(f"the {self._driver_name} driver cannot open URLs")
            t = self._clock()
            res: Any = self.driver.goto(url, timeout=self.settings.nav_timeout)
            rec.timings["act"] = _ms(t, self._clock())
            rec.action = {"action": "open", "url": url}
            rec.actions.append(rec.action)
            if res is not None and not getattr(res, "ok", True):
                rec.result = {"status": getattr(res, "status", None)}
                raise StepFailed(f"could not open {url}: {res.error}")
            self._settle(rec)

        return self._step("open", url, {"url": url}, body, observe_first=False)

    def click(
        self, target: str | None = None, *, image: str | Path | None = None, nth: int | None = None
    ) -> StepRecord:
        """Click the element showing ``target`` (its text, accessible name, or a description the model
        grounds), or the place where the picture ``image`` appears."""
        if (target is None) == (image is None):
            raise ValueError("click needs a target text or an image=, not both")
        what = target if target is not None else str(image)

        def body(screen: Screen, rec: StepRecord) -> None:
            if image is not None:
                t = self._clock()
                loc = self.locator.image(screen, str(image), nth=nth)
                rec.timings["locate"] = _ms(t, self._clock())
                self._note_location(rec, loc)
            else:
                assert target is not None
                loc = self._locate(screen, target, nth, rec)
            point = self._hit(loc, what)
            self._act(rec, A.Click(at=point))
            if rec.effect == "none" and self.settings.retry_no_effect:
                self._settle(rec, quiet_ms=300)
                if rec.effect == "none":
                    log.info("click on %r had no visible effect; clicking once more", what)
                    rec.retried = True
                    self._act(rec, A.Click(at=self._hit(loc, what)))

        return self._step(
            "click",
            what,
            {"target": target, "image": str(image) if image else None, "nth": nth},
            body,
            cache_aware=target is not None,
        )

    def type(
        self, text: str, *, into: str | None = None, nth: int | None = None, clear: bool = True
    ) -> StepRecord:
        """Type ``text``; with ``into``, first focus the field with that label or placeholder
        (replacing what it holds unless ``clear=False``) and check it then holds the text."""

        def body(screen: Screen, rec: StepRecord) -> None:
            node: UINode | None = None
            if into is not None:
                loc = self.locator.field(screen, into, nth=nth)
                self._note_location(rec, loc)
                node = loc.node
                self._act(rec, A.Click(at=self._hit(loc, into)), settle=False)
                if self._focused(node) is None:
                    self._settle(rec)  # the click did not focus the field (yet): wait for the page
                if clear and node is not None and node.value:
                    self._act(rec, A.Key(keys=["ctrl", "a"]), settle=False)  # selects what it holds
            self._act(rec, A.Type(text=text))
            if node is not None and self.settings.verify_typing and isinstance(self.driver, ElementDriver):
                self._verify_field(rec, node, text if clear else (node.value or "") + text, into or "")

        return self._step(
            "type", text if into is None else f"{text!r} into {into}", {"text": text, "into": into}, body
        )

    def key(self, keys: str | list[str]) -> StepRecord:
        """Press a key or combination: ``"Enter"``, ``"ctrl+a"``, ``["ctrl", "shift", "t"]``."""
        combo = parse_combo(keys) if isinstance(keys, str) else list(keys)

        def body(_: Screen, rec: StepRecord) -> None:
            self._act(rec, A.Key(keys=combo))

        return self._step("key", "+".join(combo), {"keys": combo}, body)

    def scroll(
        self,
        direction: Literal["up", "down", "left", "right"] = "down",
        amount: int | None = None,
        *,
        target: str | None = None,
    ) -> StepRecord:
        """Scroll by ``amount`` screenshot pixels (default: most of a screen), over ``target`` if given."""

        def body(screen: Screen, rec: StepRecord) -> None:
            at = (
                self._locate(screen, target, None, rec).point
                if target
                else (screen.width // 2, screen.height // 2)
            )
            size = screen.height if direction in ("up", "down") else screen.width
            n = amount if amount is not None else int(size * 0.8)
            dx, dy = {"up": (0, -n), "down": (0, n), "left": (-n, 0), "right": (n, 0)}[direction]
            self._act(rec, A.Scroll(at=at, dx=dx, dy=dy))

        return self._step(
            "scroll",
            f"{direction} {amount or ''}".strip(),
            {"direction": direction, "amount": amount, "target": target},
            body,
            cache_aware=target is not None,
        )

    def select(self, option: str, *, field: str | None = None) -> StepRecord:
        """Choose ``option`` in a dropdown: the one labelled ``field``, or the only one offering it."""

        def body(screen: Screen, rec: StepRecord) -> None:
            loc = self._dropdown(screen, option, field, rec)
            node = loc.node
            if node is not None and node.options and isinstance(self.driver, ElementDriver):
                labels = {normalize(o): o for o in node.options}
                if normalize(option) not in labels:
                    raise LocateError(
                        f"the dropdown {node.describe()} has no option {option!r}",
                        target=option,
                        candidates=list(node.options),
                    )
                label = labels[normalize(option)]
                t = self._clock()
                self.driver.select_option(node, label)
                rec.timings["act"] = rec.timings.get("act", 0) + _ms(t, self._clock())
                rec.action = {"action": "select", "option": label, "at": list(node.box.center)}
                rec.actions.append(rec.action)
                self._settle(rec)
                if self.settings.verify_typing:
                    self._verify_field(rec, node, label, field or option)
            else:  # a drawn dropdown: open it, then click the option's text
                self._act(rec, A.Click(at=self._hit(loc, field or option)))
                opened = self.driver.observe()
                self._act(rec, A.Click(at=self.locator.text(opened, option).point))

        return self._step(
            "select",
            f"{option}" + (f" in {field}" if field else ""),
            {"option": option, "field": field},
            body,
        )

    def wait_for(self, text: str, *, timeout: float | None = None) -> StepRecord:
        """Wait until ``text`` is visible, polling the UI tree (or the pixels, by OCR)."""
        limit = self.settings.wait_timeout if timeout is None else timeout

        def body(screen: Screen, rec: StepRecord) -> None:
            start = self._clock()
            current = screen
            polls = 0
            while True:
                if text_on_screen(current, text, self.locator):
                    rec.result = {"waited_ms": _ms(start, self._clock()), "polls": polls}
                    if polls:
                        self._save_after(rec)
                    return
                if self._clock() - start >= limit:
                    self._save_after(rec)
                    raise StepFailed(f"{text!r} did not appear within {limit:g} s")
                self._sleep(self.settings.poll_interval)
                polls += 1
                current = self._poll_screen()

        return self._step("wait_for", text, {"text": text, "timeout": limit}, body)

    def see(self, text: str) -> StepRecord:
        """Assert that ``text`` is visible now; raises :class:`CheckFailed` otherwise."""

        def body(screen: Screen, rec: StepRecord) -> None:
            if not text_on_screen(screen, text, self.locator):
                raise CheckFailed(
                    f"{text!r} is not visible", reason=_nearby(self.locator.similar(screen, text))
                )
            rec.result = True

        return self._step("see", text, {"text": text}, body)

    def locate(self, target: str, *, nth: int | None = None) -> Located:
        """Where ``target`` is on the current screen: UI tree, OCR, then the model's grounding.
        Recorded as a step (no action)."""
        found: list[Located] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            found.append(self._locate(screen, target, nth, rec))

        self._step("locate", target, {"target": target, "nth": nth}, body, cache_aware=True)
        return found[0]

    # -- model-decided steps -------------------------------------------------------------------------
    def act(self, instruction: str) -> StepRecord:
        """One step the model decides from ``instruction`` and the screenshot."""
        return loop.act(self, instruction)

    def run(
        self,
        goal: str,
        *,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        max_model_calls: int | None = None,
    ) -> RunResult:
        """The goal loop: the model acts until it terminates, answers, or a budget runs out."""
        return loop.run_goal(
            self, goal, Limits(max_steps or self.settings.max_steps, max_seconds, max_model_calls)
        )

    def iter(
        self,
        goal: str,
        *,
        max_steps: int | None = None,
        max_seconds: float | None = None,
        max_model_calls: int | None = None,
    ):  # type: ignore[no-untyped-def]
        """The goal loop as a generator of steps; its return value is the RunResult."""
        return loop.iter_goal(
            self, goal, Limits(max_steps or self.settings.max_steps, max_seconds, max_model_calls)
        )

    def ask(self, question: str) -> str:
        """Ask the model about the current screen; returns its answer."""
        return loop.ask(self, question)

    def check(self, statement: str) -> Verdict:
        """Ask the model whether ``statement`` holds on screen; truthy Verdict with the model's reason."""
        return loop.check(self, statement)

    def perform(self, action: A.Action, *, instruction: str = "") -> StepRecord:
        """Perform a raw action (points in screenshot pixels) as a recorded step."""

        def body(_: Screen, rec: StepRecord) -> None:
            self._act(rec, action)

        return self._step(action.action, instruction or action.action, action.model_dump(), body)

    # -- machinery -----------------------------------------------------------------------------------
    @property
    def _driver_name(self) -> str:
        return getattr(self.driver, "name", type(self.driver).__name__)

    def _step(
        self,
        kind: str,
        instruction: str,
        params: dict[str, Any],
        body: Callable[[Screen, StepRecord], None],
        *,
        observe_first: bool = True,
        cache_aware: bool = False,
    ) -> StepRecord:
        """One recorded step. ``cache_aware`` steps look their decision up in the cache first
        (through :func:`agent.cached.lookup`), which settles the screen itself when it has to; when
        the cached decision is typing into a field the driver can name, the step takes no frame
        (``cached.UNOBSERVED``) and the lookup checks the keyboard focus instead."""
        rec = StepRecord(index=len(self.steps), kind=kind, instruction=instruction, params=params)
        start = self._clock()
        try:
            if self._unsettled and not (cache_aware and self.cache is not None):
                self._catch_up(rec)
            if not observe_first:
                screen = _NO_SCREEN
            elif cache_aware and cached.types_from_cache(self, rec):
                screen = cached.UNOBSERVED
            else:
                screen = self._observe(rec)
            body(screen, rec)
            if not observe_first:
                self._observe(rec)  # the frame after opening, so the report shows the page
        except KeyboardInterrupt:
            rec.outcome, rec.error, rec.error_type = (
                "interrupted",
                "interrupted by the user (Ctrl-C)",
                "KeyboardInterrupt",
            )
            self._record(rec, start)
            raise
        except PixelPilotError as exc:
            rec.outcome = "error" if isinstance(exc, DriverError) else "failed"
            rec.error, rec.error_type = str(exc), type(exc).__name__
            if isinstance(exc, LocateError):
                rec.candidates = [str(c) for c in exc.candidates]
            self._record(rec, start)
            raise
        self._record(rec, start)
        return rec

    def _record(self, rec: StepRecord, start: float) -> None:
        rec.timings["total"] = _ms(start, self._clock())
        self.steps.append(rec)
        if self.recorder is not None:
            self.recorder.append(rec)
        if self.on_step is not None:
            self.on_step(rec)

    def _observe(self, rec: StepRecord) -> Screen:
        t = self._clock()
        screen = self.driver.observe()
        rec.timings["observe"] = _ms(t, self._clock())
        rec.screen, rec.scale = (screen.width, screen.height), screen.scale
        if self.recorder is not None:
            rec.frame = self.recorder.save_frame(screen.image_bytes, screen.format, digest=screen.digest)
        return screen

    def _save_after(self, rec: StepRecord) -> None:
        if self.recorder is None:
            return
        try:
            screen = self.driver.observe(tree=False)
        except DriverError:
            return
        rec.frame_after = self.recorder.save_frame(screen.image_bytes, screen.format, digest=screen.digest)

    def _poll_screen(self) -> Screen:
        if isinstance(self.driver, ElementDriver):
            return Screen(b"", 0, 0, tree=self.driver.ui_tree())
        return self.driver.observe()

    def _locate(self, screen: Screen, target: str, nth: int | None, rec: StepRecord) -> Located:
        t = self._clock()
        mode = self.settings.use_model if self.model is not None else "never"
        hit, screen = cached.lookup(self, rec, screen) if self.cache is not None else (None, screen)
        if hit is not None and hit.point is not None:
            rec.timings["locate"] = _ms(t, self._clock())
            rec.result = {
                "cache": {"from_run": str(hit.source_run), "step": hit.step.index, "score": hit.score}
            }
            loc = Located(hit.point, "cache", hit.box, None)
            self._note_location(rec, loc)
            return loc
        if mode == "only":
            loc = loop.ground(self, screen, target, rec)
        else:
            try:
                loc = self.locator.text(screen, target, nth=nth)
            except LocateError as exc:
                if exc.kind != "not_found" or mode == "never":
                    raise
                rec.candidates = [str(c) for c in exc.candidates]
                loc = loop.ground(self, screen, target, rec)
        rec.timings["locate"] = _ms(t, self._clock())
        self._note_location(rec, loc)
        return loc

    def _catch_up(self, rec: StepRecord | None) -> None:
        """Settle after an earlier action from the cache."""
        self._unsettled = False
        if isinstance(self.driver, Settling):
            t = self._clock()
            self.driver.settle(timeout=self.settings.settle_timeout)
            if rec is not None:
                rec.timings["settle"] = rec.timings.get("settle", 0) + _ms(t, self._clock())

    def _note_location(self, rec: StepRecord, loc: Located) -> None:
        rec.locator, rec.target = loc.source, (loc.node.describe() if loc.node else None)
        rec.box = loc.box.as_list() if loc.box else None
        rec.point = loc.point

    def _dropdown(self, screen: Screen, option: str, field: str | None, rec: StepRecord) -> Located:
        t = self._clock()
        if field is not None:
            loc = self.locator.field(screen, field)
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
        rec.timings["locate"] = _ms(t, self._clock())
        self._note_location(rec, loc)
        return loc

    def _hit(self, loc: Located, target: str) -> A.Point:
        if loc.node is None or not isinstance(self.driver, ElementDriver):
            return loc.point
        point = self.driver.hit_point(loc.node)
        if point is None:
            raise LocateError(
                f"{target!r} is covered by another element (or gone); nothing there can be clicked",
                target=target,
                candidates=[loc.node.describe()],
                kind="covered",
            )
        return point

    def _act(self, rec: StepRecord, action: A.Action, *, settle: bool = True) -> None:
        if isinstance(action, A.Type):
            cached.note_focus(self, rec)
        t = self._clock()
        self.driver.perform(action)
        rec.timings["act"] = rec.timings.get("act", 0) + _ms(t, self._clock())
        rec.action = action.model_dump(mode="json")
        rec.actions.append(rec.action)
        if action.point is not None:
            rec.point = action.point
        if rec.locator == "cache" and self.cache is not None and isinstance(self.driver, Settling):
            # verified against the cache before acting; the next step checks (and settles) lazily
            self._unsettled, rec.effect = True, "deferred"
            return
        if settle:
            self._settle(rec)

    def _focused(self, node: UINode | None) -> UINode | None:
        """The field with keyboard focus if the driver can tell cheaply and it is ``node`` (same role and
        place): then a focus click needs no settle before typing, and the value reads back from it."""
        if node is None or not isinstance(self.driver, FocusReader):
            return None
        now = self.driver.keyboard_focus()
        return now if now is not None and _same_place(now, node) else None

    def _settle(self, rec: StepRecord, *, quiet_ms: float | None = None) -> None:
        t = self._clock()
        if isinstance(self.driver, Settling):
            kwargs: dict[str, Any] = {"timeout": self.settings.settle_timeout}
            if quiet_ms is not None:
                kwargs["quiet_ms"] = quiet_ms
            facts = self.driver.settle(**kwargs)
            rec.effect = "changed" if facts.get("changed") else "none"
        else:
            rec.effect = "unknown"
        rec.timings["settle"] = rec.timings.get("settle", 0) + _ms(t, self._clock())

    def _verify_field(self, rec: StepRecord, node: UINode, expected: str, label: str) -> None:
        assert isinstance(self.driver, ElementDriver)
        t = self._clock()
        focused = self._focused(node)  # still in the field: read it alone, not the whole tree
        same = (
            [focused] if focused is not None else [n for n in self.driver.ui_tree() if _same_place(n, node)]
        )
        rec.timings["verify"] = _ms(t, self._clock())
        if not same:
            return  # the field went away (a submit on Enter, a closed dialog): nothing to check
        value = same[0].value
        if value is not None and value != expected:
            raise StepFailed(f"typed into {label!r}, but the field holds {value!r} instead of {expected!r}")


_NO_SCREEN = Screen(None, 0, 0)
"""Given to steps that run before their first observation (open)."""


def _same_place(a: UINode, b: UINode) -> bool:
    """The same element read twice: same role, top-left corner within 2 pixels."""
    return a.role == b.role and abs(a.box.x - b.box.x) < 2 and abs(a.box.y - b.box.y) < 2


def _nearby(similar: list[str]) -> str:
    return ("visible texts like it: " + ", ".join(similar[:6])) if similar else "nothing similar is visible"
