"""The step pipeline: observe → decide → act → settle → verify → record, for one Agent.

Every step of every kind — a scripted ``click``, a model's goal step, a cached decision, a replayed
action — runs through :meth:`StepPipeline.run`, and its outcome is decided in one place
(:func:`outcome_of`) *before* the step is written: an exception of any type is a recorded step that
did not pass (its type and message kept, and the model's raw reply where there is one), and a
:class:`~agent.runlog.RunWriter` refuses to call a run passed if one of its steps did not pass.

The loop (:mod:`agent.loop`), the cache (:mod:`agent.cached`) and replay (:mod:`agent.replay`) use
the public methods here; nothing reaches into the Agent's private state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pixelpilot.agent import cached
from pixelpilot.agent.elements import action_elements
from pixelpilot.agent.errors import (
    BudgetExceeded,
    Interrupted,
    LocateError,
    ModelOutputError,
    PixelPilotError,
    RunLogError,
    StepFailed,
)
from pixelpilot.agent.locate import Located
from pixelpilot.agent.memory import Outcome, StepRecord
from pixelpilot.agent.memory import elapsed_ms as _ms
from pixelpilot.agent.policy import PolicyRefused
from pixelpilot.agent.secrets import has_placeholder, has_secrets, reveal, scrub, scrub_obj
from pixelpilot.drivers.base import Box, DialogHandler, ElementDriver, FocusReader, Screen, Settling, UINode
from pixelpilot.tools import actions as A
from pixelpilot.tools.errors import DriverError

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["NO_SCREEN", "StepPipeline", "outcome_of", "same_place"]

log = logging.getLogger(__name__)

MODEL_KINDS = ("goal", "act")
"""Steps whose actions the model decided."""
NO_SCREEN = Screen(None, 0, 0)
"""Given to steps that run before their first observation (open)."""

StepBody = Callable[[Screen, StepRecord], None]


def outcome_of(exc: BaseException | None) -> tuple[Outcome, str | None, str | None]:
    """A step's outcome, error message and error type, from how its body ended.

    passed: it returned. interrupted: Ctrl-C or SIGTERM. error: the driver broke, the run directory
    could not be written, or anything that is not one of ours (a bug, a dependency's exception) — never silently a pass. failed: one of ours
    (not found, a check that did not hold, an unusable model reply, a budget)."""
    if exc is None:
        return "passed", None, None
    if isinstance(exc, KeyboardInterrupt):
        message = str(exc) if isinstance(exc, Interrupted) else "interrupted by the user (Ctrl-C)"
        return "interrupted", message, type(exc).__name__
    if isinstance(exc, DriverError | RunLogError):
        return "error", str(exc), type(exc).__name__
    if isinstance(exc, PixelPilotError):
        return "failed", str(exc), type(exc).__name__
    text = str(exc) or repr(exc)
    return "error", f"{type(exc).__name__}: {text}", type(exc).__name__


class StepPipeline:
    """The machinery of one Agent's steps. ``agent.pipeline`` is the one instance."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task_step: int | None = None
        """The task file's step being run (the task runner sets it; every record notes it)."""
        self.unsettled = False
        """An action taken from the cache did not wait for the screen to settle: the next step's
        check against the cache does (only when the screen does not match yet), or settles first."""

    # -- the step ----------------------------------------------------------------------------------
    def run(
        self,
        kind: str,
        instruction: str,
        params: dict[str, Any],
        body: StepBody,
        *,
        observe_first: bool = True,
        cache_aware: bool = False,
    ) -> StepRecord:
        """One recorded step. ``cache_aware`` steps look their decision up in the cache first (through
        :func:`agent.cached.lookup`), which settles the screen itself when it has to; when the cached
        decision is typing into a field the driver can name, the step takes no frame
        (``cached.UNOBSERVED``) and the lookup checks the keyboard focus instead.

        Whatever ``body`` raises is recorded (see :func:`outcome_of`) and raised again."""
        agent = self.agent
        rec = StepRecord(
            index=len(agent.steps),
            kind=kind,
            instruction=instruction,
            params=params,
            task_step=self.task_step,
        )
        start = agent.clock()
        try:
            with self._time_limit(rec):
                self._steps(rec, body, observe_first=observe_first, cache_aware=cache_aware)
        except BaseException as exc:
            self._fail(rec, exc)
            self.record(rec, start)
            raise
        self.record(rec, start)
        return rec

    def _steps(self, rec: StepRecord, body: StepBody, *, observe_first: bool, cache_aware: bool) -> None:
        agent = self.agent
        if self.unsettled and not (cache_aware and agent.cache is not None):
            self.catch_up(rec)
        if not observe_first:
            screen = NO_SCREEN
        elif cache_aware and cached.types_from_cache(agent, rec):
            screen = cached.UNOBSERVED
        else:
            screen = self.observe(rec)
        body(screen, rec)
        if not observe_first:
            self.observe(rec)  # the frame after opening, so the report shows the page

    @contextlib.contextmanager
    def _time_limit(self, rec: StepRecord) -> Iterator[None]:
        """The step's budget: ``settings.step_timeout`` and what is left of the run's ``deadline``.
        In the main thread a timer interrupts a step that runs past it (a hung server, a page that
        never settles); elsewhere the run's deadline is checked before each step."""
        agent = self.agent
        limits: list[tuple[float, str]] = []
        if agent.settings.step_timeout is not None:
            limits.append(
                (
                    agent.settings.step_timeout,
                    f"the step ran past its step_timeout of {agent.settings.step_timeout:g} s",
                )
            )
        if agent.deadline is not None:
            left = agent.deadline - agent.clock()
            limits.append((left, f"the run ran past its run_timeout ({agent.run_timeout:g} s)"))
        if not limits:
            yield
            return
        seconds, why = min(limits)
        if seconds <= 0:
            raise BudgetExceeded(why)
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        fired = False

        def expire(_signum: int, _frame: Any) -> None:
            nonlocal fired
            fired = True
            raise BudgetExceeded(why)

        # The timer repeats: an alarm that lands inside a library's callback (Playwright logs and
        # swallows what its event listeners raise) is raised again a moment later in our own code.
        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.25)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if fired:  # the step finished, but only after its limit (the alarm was swallowed)
            raise BudgetExceeded(why)

    @staticmethod
    def _fail(rec: StepRecord, exc: BaseException) -> None:
        rec.outcome, rec.error, rec.error_type = outcome_of(exc)
        if isinstance(exc, LocateError):
            rec.candidates = [str(c) for c in exc.candidates]
        if isinstance(exc, ModelOutputError):
            rec.model = rec.model or {"calls": []}
            rec.model.setdefault("raw", exc.raw)

    def record(self, rec: StepRecord, start: float) -> None:
        """Write a finished step: the agent's list, the run directory, the ``on_step`` callback."""
        agent = self.agent
        rec.timings["total"] = _ms(start, agent.clock())
        if has_secrets():  # no secret's value leaves a step: its record, the callback's progress line
            for name in ("instruction", "error", "target"):
                setattr(rec, name, scrub_obj(getattr(rec, name)))
            rec.params, rec.result, rec.model = (
                scrub_obj(rec.params),
                scrub_obj(rec.result),
                scrub_obj(rec.model),
            )
            rec.candidates, rec.actions = scrub_obj(rec.candidates), scrub_obj(rec.actions)
            rec.action, rec.elements = scrub_obj(rec.action), scrub_obj(rec.elements)
        agent.steps.append(rec)
        if agent.recorder is not None:
            agent.recorder.append(rec)
        if agent.on_step is not None:
            agent.on_step(rec)

    # -- observe -----------------------------------------------------------------------------------
    def observe(self, rec: StepRecord) -> Screen:
        """A frame for ``rec`` (saved in the run directory when recording)."""
        agent = self.agent
        t = agent.clock()
        screen = agent.driver.observe()
        rec.timings["observe"] = _ms(t, agent.clock())
        rec.screen, rec.scale = (screen.width, screen.height), screen.scale
        tab = getattr(agent.driver, "tab", None)
        if isinstance(tab, dict):
            rec.tab = tab
        if agent.mask_model and agent.mask:  # what the model (and OCR) sees is masked too
            screen = self._masked(screen)
        if agent.recorder is not None:
            rec.frame = self._store(screen)
        return screen

    def mask_boxes(self, screen: Screen) -> list[Box]:
        """Where the task's ``mask:`` targets are on ``screen`` (every match; none is an error)."""
        agent = self.agent
        boxes: list[Box] = []
        for q in agent.mask:
            with contextlib.suppress(PixelPilotError):
                found, _ = agent.locator.matches(screen, q, css=agent._css)
                boxes += [loc.box for loc in found if loc.box is not None]
        return boxes

    def _masked(self, screen: Screen) -> Screen:
        boxes = self.mask_boxes(screen)
        if not boxes:
            return screen
        img = _fill(screen.image, boxes)
        return Screen.from_image(img, scale=screen.scale, tree=screen.tree, format=screen.format)

    def _store(self, screen: Screen) -> str:
        """Save a frame, with the regions that show a secret filled (a field stays masked while a
        field is at its place on the screen; without a tree, for the rest of the run)."""
        agent = self.agent
        assert agent.recorder is not None
        if agent.masked and screen.tree is not None:
            agent.masked[:] = [b for b in agent.masked if any(n.box == b for n in screen.tree)]
        boxes = [*agent.masked, *self.mask_boxes(screen)]
        if not boxes:
            return agent.recorder.save_frame(screen.image_bytes, screen.format, digest=screen.digest)
        img = _fill(screen.image, boxes)
        buf = io.BytesIO()
        img.save(buf, format="JPEG" if screen.format in ("jpeg", "jpg") else "PNG", quality=90)
        return agent.recorder.save_frame(buf.getvalue(), screen.format)

    def save_after(self, rec: StepRecord) -> None:
        """The last frame seen, for waits and failures."""
        agent = self.agent
        if agent.recorder is None:
            return
        try:  # the task's mask: targets are found in the tree: read it then
            screen = agent.driver.observe(tree=bool(agent.mask))
        except DriverError:
            return
        rec.frame_after = self._store(screen)

    def poll_screen(self) -> Screen:
        """What a wait polls: the UI tree alone where the driver has one, else a frame."""
        driver = self.agent.driver
        if isinstance(driver, ElementDriver):
            return Screen(b"", 0, 0, tree=driver.ui_tree())
        return driver.observe()

    # -- act, settle, verify -----------------------------------------------------------------------
    def act(self, rec: StepRecord, action: A.Action, *, settle: bool = True) -> None:
        """Perform ``action`` and (unless ``settle=False``) wait until the screen is still."""
        agent = self.agent
        if isinstance(action, A.Type):
            cached.note_focus(agent, rec)
        agent.policy.check_action(rec.kind, action, self._what(rec, action))
        if rec.kind in MODEL_KINDS and agent.recorder is not None:  # what it lands on, for export
            rec.elements.append(action_elements(agent.driver, action))
        t = agent.clock()
        # a secret's placeholder (typed by a script or a model) becomes its value at the driver only
        typed = (
            A.Type(text=reveal(action.text))
            if isinstance(action, A.Type) and has_placeholder(action.text)
            else action
        )
        agent.driver.perform(typed)
        rec.timings["act"] = rec.timings.get("act", 0) + _ms(t, agent.clock())
        rec.action = action.model_dump(mode="json")
        rec.actions.append(rec.action)
        if action.point is not None:
            rec.point = action.point
        if rec.locator == "cache" and agent.cache is not None and isinstance(agent.driver, Settling):
            # verified against the cache before acting; the next step checks (and settles) lazily
            self.unsettled, rec.effect = True, "deferred"
            return
        if settle:
            self.settle(rec)

    def _what(self, rec: StepRecord, action: A.Action) -> str:
        """What an action targets, for the policy's ``confirm``: the step's target, or (a model's click
        at a point) the element there."""
        agent = self.agent
        parts = [rec.instruction, rec.target or ""]
        if (
            agent.policy.confirm
            and rec.target is None
            and action.point is not None
            and isinstance(agent.driver, ElementDriver)
        ):
            x, y = action.point
            with contextlib.suppress(PixelPilotError):
                under = [
                    n
                    for n in agent.driver.ui_tree()
                    if n.box.x <= x <= n.box.x + n.box.width and n.box.y <= y <= n.box.y + n.box.height
                ]
                if under:
                    parts.append(min(under, key=lambda n: n.box.width * n.box.height).describe())
        if isinstance(action, A.Type):
            parts.append(action.text)
        return " ".join(p for p in parts if p)

    def settle(self, rec: StepRecord, *, quiet_ms: float | None = None) -> None:
        """Wait until the screen is still; ``rec.effect`` says whether the action changed anything."""
        agent = self.agent
        t = agent.clock()
        if isinstance(agent.driver, Settling):
            kwargs: dict[str, Any] = {"timeout": agent.settings.settle_timeout}
            if quiet_ms is not None:
                kwargs["quiet_ms"] = quiet_ms
            facts = agent.driver.settle(**kwargs)
            if facts.get("blocked"):  # the browser refused to load a page the policy does not allow
                url = str(facts["blocked"])
                raise PolicyRefused(
                    f"the policy does not allow loading {url}",
                    rule=agent.policy.host_rule(urlsplit(url).hostname or ""),
                )
            rec.effect = "changed" if facts.get("changed") else "none"
            nav = facts.get("navigated")
            if facts.get("opened"):  # a new tab: the steps after this one act on it
                nav = {
                    "url": facts["opened"]["url"],
                    "status": None,
                    "error": None,
                    "new_tab": facts["opened"]["index"],
                }
        else:
            rec.effect, nav = "unknown", None
        rec.timings["settle"] = rec.timings.get("settle", 0) + _ms(t, agent.clock())
        if isinstance(agent.driver, DialogHandler):
            rec.dialogs += agent.driver.take_dialogs()
        self.collect_downloads(rec)
        if nav:
            rec.navigation = nav
            if nav.get("error"):
                raise StepFailed(
                    f"the {rec.kind} started a navigation to {nav['url']} that failed: {nav['error']}"
                )
            if nav.get("status") is not None and nav["status"] >= 400:
                raise StepFailed(f"the {rec.kind} opened {nav['url']}, which answered HTTP {nav['status']}")

    def collect_downloads(self, rec: StepRecord) -> None:
        """Save the files the step downloaded into the run directory (``downloads/``) and list them in
        the step and in run.json."""
        take = getattr(self.agent.driver, "take_downloads", None)
        if take is None:
            return
        recorder = self.agent.recorder
        got = take(recorder.path / "downloads" if recorder is not None else None)
        if not got:
            return
        for d in got:
            if d.get("file") and recorder is not None:
                d["file"] = str(Path(d["file"]).relative_to(recorder.path))
        rec.downloads += got
        if recorder is not None:
            recorder.update(downloads=[*recorder.meta.get("downloads", []), *got])

    def catch_up(self, rec: StepRecord | None) -> None:
        """Settle after an earlier action from the cache."""
        self.unsettled = False
        agent = self.agent
        if isinstance(agent.driver, Settling):
            t = agent.clock()
            agent.driver.settle(timeout=agent.settings.settle_timeout)
            if rec is not None:
                rec.timings["settle"] = rec.timings.get("settle", 0) + _ms(t, agent.clock())

    def require_effect(self, rec: StepRecord, what: str) -> None:
        """Typing with nothing to show for it fails: nothing had the keyboard focus (or the field
        refused the text). Only where the driver can tell (``effect`` is ``none``, not ``unknown``)."""
        if rec.effect != "none":
            return
        focus = None
        driver = self.agent.driver
        if isinstance(driver, FocusReader):
            try:
                focus = driver.keyboard_focus()
            except DriverError:
                focus = None
        where = f"the keyboard focus is on {focus.describe()}" if focus else "nothing had the keyboard focus"
        raise StepFailed(f"{what} had no effect: {where}; name the field with into:, or click it first")

    # -- where to act ------------------------------------------------------------------------------
    @staticmethod
    def note_location(rec: StepRecord, loc: Located) -> None:
        rec.locator, rec.target = loc.source, (loc.node.describe() if loc.node else None)
        rec.box = loc.box.as_list() if loc.box else None
        rec.point = loc.point

    def hit(self, loc: Located, target: str) -> A.Point:
        """The point to click for ``loc``: one where the element is really on top, where the driver
        can hit-test; a fully covered element is an error."""
        driver = self.agent.driver
        if loc.node is None or not isinstance(driver, ElementDriver):
            return loc.point
        aim = getattr(driver, "aim", None)  # the browser moves the pointer there first, as Playwright
        point = aim(loc.node) if aim is not None else driver.hit_point(loc.node)
        if point is None:
            cover = getattr(driver, "last_cover", None)
            raise LocateError(
                f"{target!r} ({loc.node.describe()}) is covered by {cover}: nothing of it can be clicked"
                if cover
                else f"{target!r} is covered by another element (or gone); nothing there can be clicked",
                target=target,
                candidates=[loc.node.describe()],
                kind="covered",
            )
        return point

    def focused(self, node: UINode | None) -> UINode | None:
        """The field with keyboard focus if the driver can tell cheaply and it is ``node`` (same role and
        place): then a focus click needs no settle before typing, and the value reads back from it."""
        driver = self.agent.driver
        if node is None or not isinstance(driver, FocusReader):
            return None
        now = driver.keyboard_focus()
        return now if now is not None and same_place(now, node) else None

    def verify_field(self, rec: StepRecord, node: UINode, expected: str, label: str) -> None:
        """Read a field back after typing or choosing: it must hold ``expected``."""
        agent = self.agent
        driver = agent.driver
        assert isinstance(driver, ElementDriver)
        t = agent.clock()
        focused = self.focused(node)  # still in the field: read it alone, not the whole tree
        same = [focused] if focused is not None else [n for n in driver.ui_tree() if same_place(n, node)]
        rec.timings["verify"] = _ms(t, agent.clock())
        if not same:
            return  # the field went away (a submit on Enter, a closed dialog): nothing to check
        value = same[0].value
        # a password field shows (and reads back) one mask character per character typed
        masked = value is not None and len(value) == len(expected) and set(value) <= {"●", "•", "*"}
        if value is not None and value != expected and not masked:
            raise StepFailed(
                scrub(f"typed into {label!r}, but the field holds {value!r} instead of {expected!r}")
            )


def same_place(a: UINode, b: UINode) -> bool:
    """The same element read twice: same role, top-left corner within 2 pixels."""
    return a.role == b.role and abs(a.box.x - b.box.x) < 2 and abs(a.box.y - b.box.y) < 2


def _fill(image: Any, boxes: list[Box]) -> Any:
    """A copy of ``image`` with ``boxes`` filled in one grey."""
    from PIL import ImageDraw

    img = image.convert("RGB")
    draw = ImageDraw.Draw(img)
    for b in boxes:
        draw.rectangle([b.x, b.y, b.x + b.width, b.y + b.height], fill=(40, 40, 40))
    return img
