"""Replay a recorded run without the model.

Each recorded step's actions are re-executed on a fresh driver, after checking that the screen looks
like the recorded frame: a structural similarity (SSIM) over the whole frame, and over the region the
step acted on (a changed button label barely moves the global score); a typing step recorded with the
field it typed into (and no frame, when it came from the cache) also checks that the keyboard focus is
on that field, where the driver can tell. The first divergence stops the
replay with a side-by-side picture; with ``heal`` the model is asked for that step only (its target
grounded again, or its instruction acted on) and the replay goes on. The replay is itself a run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pixelpilot.agent.cache import same_field
from pixelpilot.agent.errors import PixelPilotError, StepFailed
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.runlog import RunData, read_run
from pixelpilot.agent.similarity import acted_region, similarity
from pixelpilot.drivers.base import Driver, FocusReader, Screen
from pixelpilot.tools.actions import parse_action
from pixelpilot.tools.images import open_picture

__all__ = ["ReplayResult", "replay_run", "similarity"]  # similarity re-exported for callers of replay

log = logging.getLogger(__name__)

NO_UI_EFFECT = {"ask", "check", "locate"}
"""Steps that only looked: replay skips them (their results are in the recorded run)."""


@dataclass
class Divergence:
    step: int
    kind: str
    instruction: str
    global_score: float
    local_score: float | None
    picture: Path | None
    focus: str | None = None
    """For a typing step whose field lost the keyboard focus: what has it now."""

    def describe(self) -> str:
        if self.focus is not None:
            return f"the keyboard focus is on {self.focus}"
        return f"similarity {self.global_score:.3f} overall, {self.local_score} where it acted"


@dataclass
class ReplayResult:
    status: str
    """passed (every step matched), healed (divergences fixed by the model), diverged, failed."""
    steps: list[StepRecord] = field(default_factory=list)
    divergences: list[Divergence] = field(default_factory=list)
    model_calls: int = 0
    run_dir: Path | None = None
    reason: str = ""


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype("DejaVuSans-Bold.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _side_by_side(
    recorded: Image.Image, current: Image.Image, region: tuple[int, int, int, int] | None, out: Path
) -> Path:
    w, h = recorded.size
    current = current.resize((w, h)) if current.size != (w, h) else current
    pic = Image.new("RGB", (w * 2 + 10, h + 40), "white")
    pic.paste(recorded, (0, 40))
    pic.paste(current, (w + 10, 40))
    d = ImageDraw.Draw(pic)
    font = _font(24)
    d.text((10, 6), "recorded", fill="black", font=font)
    d.text((w + 20, 6), "now", fill=(207, 34, 46), font=font)
    if region:
        for dx in (0, w + 10):
            d.rectangle(
                [region[0] + dx, region[1] + 40, region[2] + dx, region[3] + 40],
                outline=(255, 45, 85),
                width=4,
            )
    pic.save(out)
    return out


def _compare(
    recorded: Image.Image, current: Image.Image, step: StepRecord
) -> tuple[float, float | None, Any]:
    if current.size != recorded.size:
        current = current.resize(recorded.size)
    g = similarity(recorded, current)
    region = acted_region(step, recorded.size)
    local = None
    if region is not None:
        local = similarity(
            recorded.crop(region), current.crop(region), width=max(16, min(160, region[2] - region[0]))
        )
    return g, local, region


def replay_run(
    run_dir: str | Path,
    agent: Any,
    *,
    threshold: float = 0.85,
    local_threshold: float = 0.80,
    heal: bool = False,
) -> ReplayResult:
    """Replay ``run_dir`` through ``agent`` (an :class:`agent.Agent` on a fresh driver; give it a model
    and ``heal=True`` to fix diverged steps)."""
    original: RunData = read_run(run_dir)
    driver: Driver = agent.driver
    calls_before = agent.model_calls
    result = ReplayResult("passed", run_dir=agent.recorder.path if agent.recorder else None)
    pictures = result.run_dir or Path(run_dir)
    for step in original.steps:
        if step.outcome != "passed" or step.kind in NO_UI_EFFECT:
            continue
        diverged: Divergence | None = None
        if step.frame and step.kind not in ("open",):
            recorded = open_picture(Path(run_dir) / step.frame, what=f"the recorded frame {step.frame}")
            current: Screen = driver.observe(tree=False)
            g, local, region = _compare(recorded, current.image, step)
            if g < threshold or (local is not None and local < local_threshold):
                pic = _side_by_side(
                    recorded, current.image, region, pictures / f"divergence-{step.index}.png"
                )
                diverged = Divergence(
                    step.index,
                    step.kind,
                    step.instruction,
                    round(g, 4),
                    None if local is None else round(local, 4),
                    pic,
                )
        if diverged is None and step.focus and isinstance(driver, FocusReader):
            diverged = _focus_divergence(driver, step, pictures)
        try:
            if diverged is not None:
                result.divergences.append(diverged)
                if not heal:
                    result.status = "diverged"
                    result.reason = (
                        f"step {step.index} ({step.kind} {step.instruction!r}) no longer matches the recording: "
                        + diverged.describe()
                    )
                    break
                _heal(agent, step)
                result.status = "healed"
            else:
                _redo(agent, step)
        except PixelPilotError as exc:
            result.status, result.reason = (
                "failed",
                f"step {step.index} ({step.kind} {step.instruction!r}) failed: {exc}",
            )
            break
    result.steps = list(agent.steps)
    result.model_calls = agent.model_calls - calls_before
    if result.status == "healed":
        result.reason = f"{len(result.divergences)} step(s) healed with {result.model_calls} model call(s)"
    return result


def _focus_divergence(driver: Any, step: StepRecord, pictures: Path) -> Divergence | None:
    """A typing step's check: is the keyboard focus on the field it typed into? On a mismatch, the
    current frame with the recorded field marked."""
    assert step.focus is not None
    now = driver.keyboard_focus()
    if same_field(step.focus, now):
        return None
    where = now.describe() if now is not None else "nothing (no field has it)"
    current = driver.observe(tree=False).image
    pic = Image.new("RGB", (current.width, current.height + 40), "white")
    pic.paste(current, (0, 40))
    draw = ImageDraw.Draw(pic)
    for box, colour in (
        (step.focus["box"], (255, 45, 85)),
        (now.box.as_list() if now else None, (9, 105, 218)),
    ):
        if box:
            x, y, w, h = box
            draw.rectangle([x - 4, y + 36, x + w + 4, y + h + 44], outline=colour, width=4)
    font = _font(20)
    draw.text((10, 8), f'recorded: typed into "{step.focus["name"]}"', fill=(207, 34, 46), font=font)
    draw.text((current.width // 2, 8), "now: the keyboard focus is here", fill=(9, 105, 218), font=font)
    picture = pictures / f"divergence-{step.index}.png"
    pic.save(picture)
    return Divergence(step.index, step.kind, step.instruction, 1.0, None, picture, focus=where)


def _redo(agent: Any, step: StepRecord) -> None:
    """Re-execute a recorded step without the model."""
    p = step.params
    if step.kind == "open":
        agent.open(p["url"])
    elif step.kind == "select":
        agent.select(p["option"], field=p.get("field"))
    elif step.kind == "see":
        agent.see(p["text"])
    elif step.kind == "wait_for":
        agent.wait_for(p["text"], timeout=p.get("timeout"))
    else:
        actions = step.actions or ([step.action] if step.action else [])

        def body(_: Screen, rec: StepRecord) -> None:
            for a in actions:
                if a.get("action") in ("answer", "terminate"):
                    continue
                agent.pipeline.act(rec, parse_action(a))
            rec.locator = "replay"

        agent.pipeline.run(step.kind, step.instruction, {**p, "replayed_from": step.index}, body)


def _heal(agent: Any, step: StepRecord) -> None:
    """The model decides this one step again."""
    if agent.model is None:
        raise StepFailed("cannot heal without a model (--model)")
    p = step.params
    if step.kind == "click" and p.get("target"):
        from pixelpilot.agent.session import AgentSettings

        saved = agent.settings
        agent.settings = AgentSettings(**{**saved.__dict__, "use_model": "only"})
        try:
            agent.click(p["target"], nth=p.get("nth"))
        finally:
            agent.settings = saved
    elif step.kind == "type" and p.get("into"):
        agent.type(p["text"], into=p["into"])
    else:
        agent.act(p.get("goal") or p.get("instruction") or step.instruction)
