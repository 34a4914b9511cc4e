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
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pixelpilot.agent import loop
from pixelpilot.agent.browsing import Browsing
from pixelpilot.agent.cache import StepCache
from pixelpilot.agent.errors import CheckFailed, DriverError, LocateError, StepFailed
from pixelpilot.agent.locate import (
    FIELD_ROLES,
    Located,
    Locator,
    text_on_screen,
)
from pixelpilot.agent.loop import Limits, RunResult, Verdict
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.agent.models.base import VisionModel
from pixelpilot.agent.policy import Policy
from pixelpilot.agent.query import Query, Target, as_param, describe
from pixelpilot.agent.reading import Reading, State
from pixelpilot.agent.runlog import RunWriter
from pixelpilot.agent.secrets import Secret, reveal
from pixelpilot.agent.step import StepPipeline, outcome_of
from pixelpilot.agent.targets import Targets
from pixelpilot.drivers.base import Box, DialogHandler, Driver, ElementDriver, Navigable, Screen, UINode
from pixelpilot.drivers.keys import parse_combo
from pixelpilot.tools import actions as A
from pixelpilot.tools.ocr import normalize

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
    step_timeout: float | None = None
    """Seconds one step may take before it fails (a hung server, a page that never settles)."""


class Agent(Targets, Reading, Browsing):
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
        mask: Sequence[Target] = (),
        mask_model: bool = False,
        policy: Policy | None = None,
        upload_base: Path | None = None,
    ) -> None:
        self.driver = driver
        self.policy = policy or Policy()
        """Checked before every action (see :mod:`pixelpilot.agent.policy`)."""
        self.upload_base = upload_base
        """Uploads come from inside this folder unless the policy allows others (a task file's folder)."""
        if self.policy.limits_navigation and hasattr(driver, "restrict_navigation"):
            driver.restrict_navigation(self.policy.allows_host)
        self.mask = [Query.of(m, where="mask") for m in mask]
        """Regions filled in every stored frame wherever they are found (a displayed API key, a
        customer's data); with ``mask_model``, in what the model sees too."""
        self.mask_model = mask_model
        if isinstance(model, str):
            from pixelpilot.agent.models import load_model

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
        self.masked: list[Box] = []
        """Regions filled in every stored frame: the fields that received a secret (while they are on
        the screen) — see :mod:`pixelpilot.agent.secrets`."""
        self.on_step = on_step
        self.clock, self.sleep = clock, sleep
        self.deadline: float | None = None
        """The run's end (on ``clock``), when it has a run_timeout: see :meth:`limit_run`."""
        self.run_timeout: float | None = None
        self.pipeline = StepPipeline(self)
        """observe → decide → act → settle → verify → record: every step goes through it."""

    # -- lifecycle -----------------------------------------------------------------------------------
    def close(self, status: str | None = None, *, error: str | None = None) -> None:
        """Finish the run directory (if any). ``status`` defaults to passed unless a step failed."""
        if self.pipeline.unsettled and status is None:
            self.pipeline.catch_up(None)
        if self.recorder is not None and not self.recorder.finished:
            self.recorder.finish(status or "passed", error=error)  # never passed with a failed step

    def on_dialog(self, policy: str | tuple[str, str | None], *, once: bool = False) -> None:
        """How the page's alert/confirm/prompt/beforeunload dialogs are answered: ``"accept"``,
        ``"dismiss"`` (the default, as Playwright's) or ``("accept", "text for a prompt")``; from now on,
        or (``once``) only the next one. Every dialog is recorded in the step that opened it."""
        action = policy if isinstance(policy, str) else policy[0]
        if action not in ("accept", "dismiss"):
            raise ValueError(f"a dialog is accepted or dismissed, not {action!r}")
        if isinstance(self.driver, DialogHandler):
            self.driver.set_dialog_policy(policy, once=once)

    def limit_run(self, seconds: float | None) -> None:
        """From now on the run has ``seconds`` left: a step still running then fails, and no step
        starts after it (``None``: no limit)."""
        self.run_timeout = seconds
        self.deadline = None if seconds is None else self.clock() + seconds

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()
        else:
            status, error, _ = outcome_of(exc)
            self.close(status, error=error)

    # -- scripted steps ------------------------------------------------------------------------------
    def open(self, url: str) -> StepRecord:
        """Open ``url`` (browser drivers)."""

        self.policy.check_url(url, by_model=False)

        def body(_: Screen, rec: StepRecord) -> None:
            if not isinstance(self.driver, Navigable):
                raise DriverError(f"the {self._driver_name} driver cannot open URLs")
            t = self.clock()
            res: Any = self.driver.goto(url, timeout=self.settings.nav_timeout)
            rec.timings["act"] = _ms(t, self.clock())
            rec.action = {"action": "open", "url": url}
            rec.actions.append(rec.action)
            if res is not None and not getattr(res, "ok", True):
                rec.result = {"status": getattr(res, "status", None)}
                raise StepFailed(f"could not open {url}: {res.error}")
            self.pipeline.settle(rec)

        return self.pipeline.run("open", url, {"url": url}, body, observe_first=False)

    def click(
        self, target: Target | None = None, *, image: str | Path | None = None, nth: int | None = None
    ) -> StepRecord:
        """Click the element ``target`` names — its text or accessible name, a description the model
        grounds, or any locator (:class:`~pixelpilot.agent.query.Query`, a mapping) — or the place where
        the picture ``image`` appears."""
        if (target is None) == (image is None):
            raise ValueError("click needs a target text or an image=, not both")
        what = describe(target) if target is not None else str(image)

        def body(screen: Screen, rec: StepRecord) -> None:
            if image is not None:
                t = self.clock()
                loc = self.locator.image(screen, str(image), nth=nth)
                rec.timings["locate"] = _ms(t, self.clock())
                self.pipeline.note_location(rec, loc)
            else:
                assert target is not None
                loc = self._locate(screen, target, nth, rec)
            point = self.pipeline.hit(loc, what)
            self.pipeline.act(rec, A.Click(at=point))
            field = loc.node is not None and loc.node.role in FIELD_ROLES
            if rec.effect == "none" and field and self.pipeline.focused(loc.node) is not None:
                rec.effect = "focused"  # a field that had the focus already: it has it, as asked
            if rec.effect == "none" and self.settings.retry_no_effect:
                self.pipeline.settle(rec, quiet_ms=300)
                if rec.effect == "none":
                    log.info("click on %r had no visible effect; clicking once more", what)
                    rec.retried = True
                    self.pipeline.act(rec, A.Click(at=self.pipeline.hit(loc, what)))

        return self.pipeline.run(
            "click",
            what,
            {"target": as_param(target), "image": str(image) if image else None, "nth": nth},
            body,
            cache_aware=target is not None,
        )

    def hover(self, target: Target, *, nth: int | None = None) -> StepRecord:
        """Move the pointer over ``target`` (a menu that opens on hover, a tooltip). No effect is
        required: hovering often changes nothing."""
        return self._point_at("hover", target, nth, A.MouseMove)

    def double_click(self, target: Target, *, nth: int | None = None) -> StepRecord:
        """Double-click ``target`` (never repeated when it shows no effect: twice would be four clicks)."""
        return self._point_at("double_click", target, nth, A.DoubleClick)

    def right_click(self, target: Target, *, nth: int | None = None) -> StepRecord:
        """Right-click ``target`` (a context menu)."""
        return self._point_at("right_click", target, nth, A.RightClick)

    def drag(self, source: Target, to: Target, *, nth: int | None = None) -> StepRecord:
        """Press on ``source``, move to ``to`` and release (both located and hit-tested like a click)."""

        def body(screen: Screen, rec: StepRecord) -> None:
            start = self.pipeline.hit(self._locate(screen, source, nth, rec), describe(source))
            t = self.clock()
            end_loc = self.locator.text(screen, to, css=self._css)
            rec.timings["locate"] = rec.timings.get("locate", 0) + _ms(t, self.clock())
            end = self.pipeline.hit(end_loc, describe(to))
            rec.result = {
                "from": list(start),
                "to": list(end),
                "to_target": end_loc.node.describe() if end_loc.node else describe(to),
            }
            self.pipeline.act(rec, A.Drag(start=start, end=end))

        return self.pipeline.run(
            "drag",
            f"{describe(source)} → {describe(to)}",
            {"from": as_param(source), "to": as_param(to), "nth": nth},
            body,
        )

    def _point_at(self, kind: str, target: Target, nth: int | None, make: Any) -> StepRecord:
        what = describe(target)

        def body(screen: Screen, rec: StepRecord) -> None:
            loc = self._locate(screen, target, nth, rec)
            self.pipeline.act(rec, make(at=self.pipeline.hit(loc, what)))

        return self.pipeline.run(kind, what, {"target": as_param(target), "nth": nth}, body, cache_aware=True)

    def type(
        self,
        text: str | Secret | None = None,
        *,
        into: Target | None = None,
        nth: int | None = None,
        clear: bool = True,
        secret: Secret | None = None,
    ) -> StepRecord:
        """Type ``text``; with ``into``, first focus the field with that label or placeholder
        (replacing what it holds unless ``clear=False``) and check it then holds the text. A
        :class:`~pixelpilot.agent.secrets.Secret` (``text`` or ``secret=``) is typed by the driver and
        recorded as its placeholder: its value is written nowhere."""
        given = secret if secret is not None else text
        if given is None:
            raise ValueError("type needs a text (or secret=)")
        if isinstance(given, Secret):
            shown, expected = given.placeholder, given.reveal()
        else:
            shown, expected = given, reveal(given)

        def body(screen: Screen, rec: StepRecord) -> None:
            node: UINode | None = None
            if into is not None:
                loc = self._field(screen, into, nth, rec)
                self.pipeline.note_location(rec, loc)
                node = loc.node
                self.pipeline.act(rec, A.Click(at=self.pipeline.hit(loc, describe(into))), settle=False)
                if self.pipeline.focused(node) is None:
                    self.pipeline.settle(rec)  # the click did not focus the field (yet): wait for the page
                if clear and node is not None and node.value:
                    self.pipeline.act(rec, A.Key(keys=["ctrl", "a"]), settle=False)  # selects what it holds
            self.pipeline.act(rec, A.Type(text=shown))
            if isinstance(given, Secret) or shown != expected:  # the field's pixels are the secret's now
                box = node.box if node is not None else (Box(*rec.box) if rec.box else None)
                if box is not None and box not in self.masked:
                    self.masked.append(box)
            if into is None:
                self.pipeline.require_effect(rec, f"typing {shown[:40]!r}")
            if node is not None and self.settings.verify_typing and isinstance(self.driver, ElementDriver):
                self.pipeline.verify_field(
                    rec,
                    node,
                    expected if clear else (node.value or "") + expected,
                    describe(into) if into else "",
                )

        return self.pipeline.run(
            "type",
            shown if into is None else f"{shown!r} into {describe(into)}",
            {"text": shown, "into": as_param(into), **({} if clear else {"clear": False})},
            body,
        )

    def key(self, keys: str | list[str]) -> StepRecord:
        """Press a key or combination: ``"Enter"``, ``"ctrl+a"``, ``["ctrl", "shift", "t"]``."""
        combo = parse_combo(keys) if isinstance(keys, str) else list(keys)

        def body(_: Screen, rec: StepRecord) -> None:
            self.pipeline.act(rec, A.Key(keys=combo))

        return self.pipeline.run("key", "+".join(combo), {"keys": combo}, body)

    def scroll(
        self,
        direction: Literal["up", "down", "left", "right"] = "down",
        amount: int | None = None,
        *,
        target: Target | None = None,
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
            self.pipeline.act(rec, A.Scroll(at=at, dx=dx, dy=dy))

        return self.pipeline.run(
            "scroll",
            f"{direction} {amount or ''}".strip(),
            {"direction": direction, "amount": amount, "target": as_param(target)},
            body,
            cache_aware=target is not None,
        )

    def select(self, option: str, *, field: Target | None = None) -> StepRecord:
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
                t = self.clock()
                self.driver.select_option(node, label)
                rec.timings["act"] = rec.timings.get("act", 0) + _ms(t, self.clock())
                rec.action = {"action": "select", "option": label, "at": list(node.box.center)}
                rec.actions.append(rec.action)
                self.pipeline.settle(rec)
                if self.settings.verify_typing:
                    self.pipeline.verify_field(rec, node, label, describe(field) if field else option)
            else:  # a drawn dropdown: open it, then click the option's text
                self.pipeline.act(
                    rec, A.Click(at=self.pipeline.hit(loc, describe(field) if field else option))
                )
                opened = self.driver.observe()
                self.pipeline.act(rec, A.Click(at=self.locator.text(opened, option).point))

        return self.pipeline.run(
            "select",
            f"{option}" + (f" in {describe(field)}" if field else ""),
            {"option": option, "field": as_param(field)},
            body,
        )

    def wait_for(
        self,
        text: Target | None = None,
        *,
        url: str | None = None,
        response: str | None = None,
        download: str | None = None,
        state: State | None = None,
        timeout: float | None = None,
    ) -> StepRecord:
        """Wait until ``text`` is visible (polling the UI tree, or the pixels by OCR) — or any locator
        is in ``state`` (visible, hidden, gone, enabled, disabled, checked, unchecked); or (browser)
        until the page's URL contains ``url``, or a response whose URL contains ``response`` arrived (one
        that arrived during the previous action counts)."""
        limit = self.settings.wait_timeout if timeout is None else timeout
        if sum(v is not None for v in (text, url, response, download)) != 1:
            raise ValueError("wait_for takes one of: text, url=, response=, download=")
        if text is None:
            return self._wait_browser(url, response, limit, download)
        if not isinstance(text, str) or state is not None:
            return self._wait(text, "wait_for", state=state or "visible", timeout=limit)

        def body(screen: Screen, rec: StepRecord) -> None:
            start = self.clock()
            current = screen
            polls = 0
            while True:
                if text_on_screen(current, text, self.locator):
                    rec.result = {"waited_ms": _ms(start, self.clock()), "polls": polls}
                    if polls:
                        self.pipeline.save_after(rec)
                    return
                if self.clock() - start >= limit:
                    self.pipeline.save_after(rec)
                    raise StepFailed(f"{text!r} did not appear within {limit:g} s")
                self.sleep(self.settings.poll_interval)
                polls += 1
                current = self.pipeline.poll_screen()

        return self.pipeline.run("wait_for", text, {"text": text, "timeout": limit}, body)

    def see(self, text: Target) -> StepRecord:
        """Assert that ``text`` — or any locator — is visible now; raises :class:`CheckFailed` otherwise
        (:meth:`expect` waits for it)."""
        if not isinstance(text, str):
            return self._wait(text, "see", state="visible", timeout=0)

        def body(screen: Screen, rec: StepRecord) -> None:
            if not text_on_screen(screen, text, self.locator):
                raise CheckFailed(
                    f"{text!r} is not visible", reason=_nearby(self.locator.similar(screen, text))
                )
            rec.result = True

        return self.pipeline.run("see", text, {"text": text}, body)

    def locate(self, target: Target, *, nth: int | None = None) -> Located:
        """Where ``target`` is on the current screen: UI tree, OCR, then the model's grounding.
        Recorded as a step (no action)."""
        found: list[Located] = []

        def body(screen: Screen, rec: StepRecord) -> None:
            found.append(self._locate(screen, target, nth, rec))

        self.pipeline.run(
            "locate", describe(target), {"target": as_param(target), "nth": nth}, body, cache_aware=True
        )
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
    ) -> Generator[StepRecord, None, RunResult]:
        """The goal loop as a generator of steps; its return value is the RunResult."""
        return loop.iter_goal(
            self, goal, Limits(max_steps or self.settings.max_steps, max_seconds, max_model_calls)
        )

    def ask(self, question: str) -> str:
        """Ask the model about the current screen; returns its answer."""
        return loop.ask(self, question)

    def check(self, statement: str, *, strict: bool = False) -> Verdict:
        """Ask the model whether ``statement`` holds on screen; truthy Verdict with the model's reason.
        ``strict=True`` makes it an assertion: a false verdict fails the step and raises
        :class:`CheckFailed` (task files' ``check:`` steps are strict)."""
        return loop.check(self, statement, strict=strict)

    def perform(self, action: A.Action, *, instruction: str = "") -> StepRecord:
        """Perform a raw action (points in screenshot pixels) as a recorded step."""

        def body(_: Screen, rec: StepRecord) -> None:
            self.pipeline.act(rec, action)

        return self.pipeline.run(action.action, instruction or action.action, action.model_dump(), body)

    # -- machinery -----------------------------------------------------------------------------------
    @property
    def _driver_name(self) -> str:
        return getattr(self.driver, "name", type(self.driver).__name__)


def _nearby(similar: list[str]) -> str:
    return ("visible texts like it: " + ", ".join(similar[:6])) if similar else "nothing similar is visible"
