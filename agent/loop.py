"""Model-decided steps: one action (``act``), the goal loop, grounding, ``ask`` and ``check``.

The goal loop is a generator (``iter_goal``) that yields each StepRecord as it ends and returns a
:class:`RunResult`: screenshot → Qwen3-VL picks the next tool call → the driver performs it → the step
is recorded; it ends on ``terminate``, ``answer``, a budget, an unusable reply, or the loop guard.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixelpilot.agent import cached
from pixelpilot.agent.errors import CheckFailed, ModelError, ModelOutputError, StepFailed
from pixelpilot.agent.locate import Located
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.models.base import Reply, VisionModel
from pixelpilot.agent.policy import PolicyRefused
from pixelpilot.agent.qwen import grid
from pixelpilot.agent.qwen.parse import (
    ParsedReply,
    parse_check,
    parse_grounding,
    parse_reply,
    reply_to_action,
)
from pixelpilot.agent.qwen.prompts import (
    HistoryItem,
    Prompt,
    act_prompt,
    ask_prompt,
    check_prompt,
    grounding_prompt,
    loop_prompt,
    reask,
)
from pixelpilot.drivers.base import Box, Screen
from pixelpilot.tools import actions as A
from pixelpilot.tools.spaces import ActionSpace, get_space

if TYPE_CHECKING:
    from pixelpilot.agent.session import Agent

__all__ = ["Limits", "RunResult", "Verdict", "act", "ask", "check", "ground", "iter_goal", "run_goal"]


@dataclass(frozen=True)
class Limits:
    """Budgets of a goal run."""

    max_steps: int = 15
    max_seconds: float | None = None
    max_model_calls: int | None = None


@dataclass
class RunResult:
    """How a goal run ended: ``passed`` (terminate success or an answer), ``failed`` (terminate failure,
    the loop guard), ``budget`` (a limit ran out) or ``error`` (the model's replies were unusable)."""

    status: str
    reason: str
    answer: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    model_calls: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Verdict:
    """The model's judgement of a statement; truthy when it holds."""

    result: bool
    reason: str

    def __bool__(self) -> bool:
        return self.result


def _require_model(agent: Agent) -> VisionModel:
    if agent.model is None:
        raise ModelError(
            "this step needs a model: Agent(driver, model=...) or --model / model: in the task file"
        )
    return agent.model


def space_of(agent: Agent) -> ActionSpace:
    return get_space(getattr(agent.driver, "action_space", "computer_use"))


def call_model(agent: Agent, prompt: Prompt, rec: StepRecord) -> Reply:
    """One model call, logged in the step (digest, image sizes, raw reply, tokens, latency)."""
    model = _require_model(agent)
    t = time.perf_counter()
    reply = model.generate(prompt)
    latency = (time.perf_counter() - t) * 1000
    agent.model_calls += 1
    info = rec.model or {"backend": model.name, "calls": []}
    info["calls"].append(
        {
            "kind": prompt.kind,
            "prompt_digest": prompt.digest(),
            "images": [list(im.size) for im in prompt.images],
            "images_to_model": [list(s) for s in reply.image_sizes],
            "raw": reply.text,
            "tokens_in": reply.tokens_in,
            "tokens_out": reply.tokens_out,
            "latency_ms": round(latency, 1),
            "finish_reason": reply.finish_reason,
            **({"endpoint": reply.extra["endpoint"]} if reply.extra.get("endpoint") else {}),
            **({"history": prompt.meta} if prompt.meta else {}),
        }
    )
    info["raw"] = reply.text
    rec.model = info
    rec.timings["model"] = rec.timings.get("model", 0) + round(latency, 2)
    return reply


def decide(
    agent: Agent, screen: Screen, make_prompt: Callable[[Screen], Prompt], rec: StepRecord
) -> tuple[A.Action, ParsedReply, Screen]:
    """The next tool call, from the cache (verified on screen, or for typing by the keyboard focus)
    or the model; an unusable reply goes back once with the error. Returns the screen it was decided
    on: a fresher one when the cache check had to wait for the screen to settle, one not ``taken``
    when the focus check needed none."""
    space = space_of(agent)
    profile = _require_model(agent).profile
    size = (screen.width, screen.height)

    def convert(parsed: ParsedReply) -> tuple[A.Action, dict[str, Any]]:
        return reply_to_action(
            parsed,
            space,
            size,
            divisor=profile.divisor(space.name),
            scroll_unit=profile.scroll_unit,
            profile=profile,
        )

    rec.locator = "model"
    if agent.cache is not None:
        hit, screen = cached.lookup(agent, rec, screen, whole_screen=True)
        if hit is not None and hit.step.action is not None:
            return (*_from_cache(hit, rec), screen)
    prompt = make_prompt(screen)
    parsed = parse_reply(call_model(agent, prompt, rec).text)
    try:
        action, facts = convert(parsed)
    except ModelOutputError as exc:
        assert rec.model is not None
        rec.model["reasked"] = exc.reason
        parsed = parse_reply(call_model(agent, reask(prompt, parsed.raw, exc.reason, space), rec).text)
        action, facts = convert(parsed)
    assert rec.model is not None
    rec.model.update(
        call={"name": parsed.call.name, "arguments": parsed.call.arguments} if parsed.call else None,
        thought=parsed.thought,
        action_text=parsed.action_text,
        thinking=parsed.thinking,
        **facts,
    )
    return action, parsed, screen


def _from_cache(hit: Any, rec: StepRecord) -> tuple[A.Action, ParsedReply]:
    """A decision taken from the cache (verified on screen): no model call."""
    old = hit.step.model or {}
    action = A.parse_action(hit.step.action)
    raw = str(old.get("raw", ""))
    parsed = parse_reply(raw) if raw else ParsedReply(raw="", call=None, calls=0)
    rec.locator = "cache"
    rec.model = {
        "backend": "cache",
        "calls": [],
        "raw": raw,
        "action_text": old.get("action_text"),
        "thought": old.get("thought"),
        "from_run": str(hit.source_run),
        "from_step": hit.step.index,
        "score": hit.score,
    }
    return action, parsed


def _finish(rec: StepRecord, action: A.Action) -> None:
    if isinstance(action, A.Answer):
        rec.action, rec.result = action.model_dump(), {"answer": action.text}
    elif isinstance(action, A.Terminate):
        rec.action, rec.result = action.model_dump(), {"status": action.status}


def act(agent: Agent, instruction: str) -> StepRecord:
    """One model-decided step from a bare instruction (the cookbook's prompt)."""

    def body(screen: Screen, rec: StepRecord) -> None:
        action, _, _ = decide(agent, screen, lambda s: act_prompt(space_of(agent), instruction, s.image), rec)
        if isinstance(action, A.Answer | A.Terminate):
            _finish(rec, action)
        else:
            agent.pipeline.act(rec, action)
            if isinstance(action, A.Type):
                agent.pipeline.require_effect(rec, f"the model's typing of {action.text[:40]!r}")

    return agent.pipeline.run("act", instruction, {"instruction": instruction}, body, cache_aware=True)


def _narrate(parsed: ParsedReply, action: A.Action) -> str:
    if parsed.action_text:
        return parsed.action_text
    return json.dumps(parsed.call.arguments if parsed.call else action.model_dump(), ensure_ascii=False)


def iter_goal(agent: Agent, goal: str, limits: Limits) -> Generator[StepRecord, None, RunResult]:
    """The goal loop; yields steps, returns the RunResult."""
    model = _require_model(agent)
    space = space_of(agent)
    start = time.monotonic()
    calls_at_start = agent.model_calls
    history: list[HistoryItem] = []
    steps: list[StepRecord] = []
    last: tuple[str, str] | None = None
    repeats = 0

    def result(status: str, reason: str, answer: str | None = None) -> RunResult:
        return RunResult(status, reason, answer, steps, agent.model_calls - calls_at_start)

    for n in range(limits.max_steps):
        if limits.max_seconds is not None and time.monotonic() - start >= limits.max_seconds:
            return result("budget", f"the time budget of {limits.max_seconds:g} s ran out after {n} steps")
        if (
            limits.max_model_calls is not None
            and agent.model_calls - calls_at_start >= limits.max_model_calls
        ):
            return result(
                "budget", f"the budget of {limits.max_model_calls} model calls ran out after {n} steps"
            )
        outcome: dict[str, Any] = {}

        def body(screen: Screen, rec: StepRecord, outcome: dict[str, Any] = outcome) -> None:
            nonlocal last, repeats
            action, parsed, screen = decide(
                agent, screen, lambda s: loop_prompt(space, goal, history, s.image, model.profile), rec
            )
            outcome.update(action=action, parsed=parsed, screen=screen)
            if isinstance(action, A.Answer | A.Terminate):
                _finish(rec, action)
                return
            seen = screen.digest if screen.taken else str(rec.focus)
            signature = (action.model_dump_json(), seen)
            repeats = repeats + 1 if signature == last else 1
            last = signature
            if repeats >= 3:
                raise StepFailed(
                    f"loop guard: the same action ({action.action} {action.point or ''}) on an unchanged screen three times"
                )
            agent.pipeline.act(rec, action)
            if isinstance(action, A.Type):
                agent.pipeline.require_effect(rec, f"the model's typing of {action.text[:40]!r}")

        try:
            rec = agent.pipeline.run(
                "goal", f"{goal} · step {n + 1}", {"goal": goal, "step": n + 1}, body, cache_aware=True
            )
        except ModelOutputError as exc:
            steps.append(agent.steps[-1])
            yield agent.steps[-1]
            return result(
                "error", f"the model's reply could not be used, even after asking again: {exc.reason}"
            )
        except PolicyRefused as exc:  # the model is told the rule, and goes on (the step stays failed)
            steps.append(agent.steps[-1])
            yield agent.steps[-1]
            if "parsed" not in outcome:
                return result("failed", str(exc))
            last, repeats = None, 0  # a refused action is no progress, and no repeat either
            refused = f"REFUSED by the policy: {exc} — choose another action"
            shot = outcome.get("screen")
            history.append(
                HistoryItem(
                    shot if shot is not None and shot.taken else None, outcome["parsed"].raw, refused, refused
                )
            )
            continue
        except StepFailed as exc:
            steps.append(agent.steps[-1])
            yield agent.steps[-1]
            return result("failed", str(exc))
        steps.append(rec)
        yield rec
        action, parsed = outcome["action"], outcome["parsed"]
        if isinstance(action, A.Terminate):
            status = "passed" if action.status == "success" else "failed"
            return result(status, f"the model ended the task: {action.status}")
        if isinstance(action, A.Answer):
            return result("passed", "the model answered", action.text)
        screen = outcome["screen"]
        history.append(HistoryItem(screen if screen.taken else None, parsed.raw, _narrate(parsed, action)))
    return result("budget", f"{limits.max_steps} steps without finishing (max_steps)")


def run_goal(agent: Agent, goal: str, limits: Limits) -> RunResult:
    gen = iter_goal(agent, goal, limits)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def ground(agent: Agent, screen: Screen, target: str, rec: StepRecord) -> Located:
    """Qwen3-VL grounding: where is ``target``? (point_2d on the 0–1000 grid)."""
    reply = call_model(agent, grounding_prompt(target, screen.image), rec)
    items = parse_grounding(reply.text)
    first = items[0]
    size = (screen.width, screen.height)
    try:
        if first.point is not None:
            point = grid.grid_to_pixels(first.point, size, 1000)
            box = None
        else:
            assert first.bbox is not None
            x0, y0 = grid.grid_to_pixels(first.bbox[:2], size, 1000)
            x1, y1 = grid.grid_to_pixels(first.bbox[2:], size, 1000)
            box = Box(x0, y0, x1 - x0, y1 - y0)
            point = box.center
    except grid.OffScreen as exc:
        raise ModelOutputError(str(exc), raw=reply.text) from None
    assert rec.model is not None
    rec.model.update(
        grounding={"label": first.label, "point_2d": first.point, "bbox_2d": first.bbox},
        pixel_point=list(point),
    )
    return Located(point, "model", box, None, len(items))


def ask(agent: Agent, question: str) -> str:
    def body(screen: Screen, rec: StepRecord) -> None:
        parsed = parse_reply(call_model(agent, ask_prompt(question, screen.image), rec).text)
        answer = parsed.text.strip()
        if parsed.call is not None and parsed.call.arguments.get("action") == "answer":
            answer = str(parsed.call.arguments.get("text", answer))
        rec.result = {"answer": answer}

    rec = agent.pipeline.run("ask", question, {"question": question}, body)
    return str(rec.result["answer"])


def check(agent: Agent, statement: str, *, strict: bool = False) -> Verdict:
    """The model's verdict on ``statement``. ``strict``: a false verdict fails the step (recorded as
    failed before it is written) and raises :class:`CheckFailed`."""

    def body(screen: Screen, rec: StepRecord) -> None:
        ok, reason = parse_check(call_model(agent, check_prompt(statement, screen.image), rec).text)
        rec.result = {"result": ok, "reason": reason}
        if strict and not ok:
            raise CheckFailed(f"check failed: {statement!r}", reason=f"the model judged it false: {reason}")

    rec = agent.pipeline.run("check", statement, {"statement": statement}, body)
    return Verdict(bool(rec.result["result"]), str(rec.result["reason"]))
