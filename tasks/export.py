"""``pixelpilot export RUN_DIR``: a run (the model's ``goal``/``act`` steps included) as a task file of
scripted steps that needs no model.

Each step the task file had as a scripted step is written as it was (paths made relative to the new
file). Each of the model's actions becomes the step a script would take to the same element:

- the target recorded with the action (:mod:`pixelpilot.agent.elements`: the element under its point
  on the UI tree, by the shortest text, role and name, placeholder … that finds it alone);
- else the text OCR reads at that point on the recorded frame, when it is on the screen once;
- else a picture cut from the recorded frame around the point, saved next to the task file;
- else the step stays the model's (``act:``), with a comment saying why.

A model's ``check`` and its final ``answer`` become ``see:`` steps for the texts they relied on (quoted in
the statement or the reason, or the answer itself) where those are on the recorded screen; a ``wait``
becomes a ``wait_for:`` the next step's target. Steps left to the model keep the task's ``model:``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image
from rich.console import Console

from pixelpilot.agent.errors import ConfigError
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.runlog import RunData, read_run
from pixelpilot.tools.images import open_picture
from pixelpilot.tools.ocr import OcrEngine, OcrText, find_text

__all__ = ["Exported", "cmd_export", "export_run"]

MODEL_VERBS = ("goal", "act", "check", "ask")
"""A task file's steps that the model decides."""
_QUOTED = re.compile(r"\"([^\"]{2,80})\"|“([^”]{2,80})”|'([^']{2,80})'|‘([^’]{2,80})’")
_SURE = 0.9
"""OCR's confidence for a text to become a target."""
_CROP_HALVES = (24, 40, 64)
"""Half-sizes, in frame pixels, of the pictures tried for an image target (the smallest found once wins)."""


@dataclass
class Exported:
    text: str
    """The task file."""
    scripted: int = 0
    """Steps written as scripted steps."""
    left: list[str] = field(default_factory=list)
    """Why each step left to the model could not be scripted."""
    images: list[Path] = field(default_factory=list)
    """Pictures saved for image targets."""
    source_status: str = ""


@dataclass
class _Out:
    step: dict[str, Any] | None
    comment: str | None = None
    why: str = ""
    """For a step left to the model: why it could not be scripted."""
    wait: float | None = None
    """A model's wait of this many seconds: becomes a wait for the next step's target."""

    @property
    def model(self) -> bool:
        """Whether the step is left to the model."""
        return bool(self.why)


def _left(step: dict[str, Any], why: str) -> _Out:
    """A step the model keeps, with the reason in a comment."""
    return _Out(step, f"left to the model: {why}", why=why)


class _Exporter:
    def __init__(self, run: RunData, out: Path | None) -> None:
        self.run = run
        self.out = out
        self._ocr: dict[str, list[OcrText]] = {}
        self._frames: dict[str, Image.Image] = {}
        self.images: list[Path] = []
        self.last_target: Any = None
        """What the last step written clicked (a typing into it needs no ``into:``)."""

    # -- frames --------------------------------------------------------------------------------
    def frame(self, rec: StepRecord) -> Image.Image | None:
        if not rec.frame:
            return None
        if rec.frame not in self._frames:
            try:
                self._frames[rec.frame] = open_picture(
                    self.run.path / rec.frame, what=f"the frame {rec.frame}"
                )
            except (OSError, ValueError):
                return None
        return self._frames[rec.frame]

    def ocr(self, rec: StepRecord) -> list[OcrText]:
        img = self.frame(rec)
        if img is None or rec.frame is None:
            return []
        if rec.frame not in self._ocr:
            self._ocr[rec.frame] = OcrEngine.shared().read(img)
        return self._ocr[rec.frame]

    # -- where a model's action landed ---------------------------------------------------------
    def target(self, rec: StepRecord, point: Any, element: dict[str, Any] | None) -> tuple[Any, str | None]:
        """A target for what is at ``point`` on ``rec``'s frame, and a comment (None when the UI tree
        named it); (None, why) when nothing does."""
        if element and element.get("target") is not None:
            return element["target"], None
        if point is None:
            return None, "the action has no point"
        x, y = point
        texts = [  # read with confidence (a round icon can read as "0")
            t
            for t in self.ocr(rec)
            if t.score >= _SURE
            and t.box[0] - 2 <= x <= t.box[0] + t.box[2] + 2
            and t.box[1] - 2 <= y <= t.box[1] + t.box[3] + 2
        ]
        said = "found by its text on the screen (no UI tree named it)"
        for t in sorted(texts, key=lambda t: (t.kind != "word", t.box[2] * t.box[3])):
            same = sorted(find_text(self.ocr(rec), t.text), key=lambda f: (f.box[1], f.box[0]))
            if len(same) == 1:
                return t.text.strip(), said
            at = [
                k
                for k, f in enumerate(same)
                if f.box[0] <= x <= f.box[0] + f.box[2] and f.box[1] <= y <= f.box[1] + f.box[3]
            ]
            if (
                len(at) == 1
            ):  # the same text elsewhere too: which one, in reading order (as the locator counts)
                return {"text": t.text.strip(), "nth": at[0] + 1}, said
        picture = self.crop(rec, (int(x), int(y)))
        if picture is not None:
            what = element["element"] if element else f"the point ({x}, {y})"
            return {
                "image": picture
            }, f"a picture cut from the recorded frame at {what}: nothing else named it"
        return (
            None,
            f"nothing names what is at ({x}, {y}): no UI tree target, no text there, no picture found once",
        )

    def crop(self, rec: StepRecord, point: tuple[int, int]) -> str | None:
        from pixelpilot.tools.template import find_template

        img = self.frame(rec)
        if img is None or self.out is None:
            return None
        x, y = point
        for half in _CROP_HALVES:
            box = (max(0, x - half), max(0, y - half), min(img.width, x + half), min(img.height, y + half))
            piece = img.crop(box)
            found = find_template(img, piece, threshold=0.9, limit=3)
            if len(found) != 1:
                continue
            folder = self.out.parent / f"{self.out.stem}.images"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"step-{rec.index}-{len(self.images)}.png"
            piece.save(path)
            self.images.append(path)
            return os.path.relpath(path, self.out.parent)
        return None

    # -- a model's step ------------------------------------------------------------------------
    def model_record(self, rec: StepRecord) -> list[_Out]:
        out: list[_Out] = []
        for i, action in enumerate(rec.actions or ([rec.action] if rec.action else [])):
            element = rec.elements[i] if i < len(rec.elements) else None
            out += self.action(rec, action, element)
        return out

    def action(self, rec: StepRecord, action: dict[str, Any], element: dict[str, Any] | None) -> list[_Out]:
        kind = action.get("action")
        point = action.get("at")
        verbs = {
            "click": "click",
            "double_click": "double_click",
            "right_click": "right_click",
            "mouse_move": "hover",
        }
        if kind in verbs:
            target, why = self.target(rec, point, element)
            if target is None:
                return [self.to_model(rec, why or "")]
            if isinstance(target, dict) and "image" in target and verbs[kind] != "click":
                return [self.to_model(rec, f"a {kind} on a picture target is not a task step")]
            return [_Out({verbs[kind]: target}, why)]
        if kind == "type":
            text = str(action.get("text", ""))
            into = element.get("target") if element else None
            if into is None or self.last_target == into:
                return [_Out({"type": text})]  # where the focus is, as the model typed
            return [_Out({"type": {"text": text, "into": into, "clear": False}})]
        if kind == "key":
            return [_Out({"key": "+".join(str(k) for k in action.get("keys", []))})]
        if kind == "scroll":
            dx, dy = int(action.get("dx", 0)), int(action.get("dy", 0))
            if abs(dy) >= abs(dx):
                direction, amount = ("down" if dy > 0 else "up"), abs(dy)
            else:
                direction, amount = ("right" if dx > 0 else "left"), abs(dx)
            args: dict[str, Any] = {"direction": direction, "amount": max(1, amount)}
            if point is not None and element and element.get("target") is not None:
                args["target"] = element["target"]
            return [_Out({"scroll": args})]
        if kind == "drag":
            ends = element or {}
            src, dst = (ends.get("from") or {}).get("target"), (ends.get("to") or {}).get("target")
            if src is None or dst is None:
                return [self.to_model(rec, "no target names both ends of the drag")]
            return [_Out({"drag": {"from": src, "to": dst}})]
        if kind == "wait":
            return [_Out(None, wait=float(action.get("seconds", 1.0)))]
        if kind == "answer":
            return self.seen(rec, [str(action.get("text", ""))], "the model's answer")
        if kind == "terminate":
            return []
        return [self.to_model(rec, f"a {kind} has no scripted step")]

    def to_model(self, rec: StepRecord, why: str) -> _Out:
        said = (rec.model or {}).get("action_text") or rec.instruction
        return _left({"act": str(said)}, why)

    def seen(self, rec: StepRecord, texts: Iterable[str], what: str) -> list[_Out]:
        """``see:`` steps for the texts (and the quoted parts of them) that are on ``rec``'s frame."""
        wanted: list[str] = []
        for text in texts:
            wanted += [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)]
            if 0 < len(text.strip()) <= 80:
                wanted.append(text.strip().rstrip("."))
        found: list[_Out] = []
        for want in dict.fromkeys(w for w in wanted if w.strip()):
            if find_text(self.ocr(rec), want):
                found.append(_Out({"see": want}, f"{what} relied on it" if not found else None))
        return found


def _rebase(value: str, origin: Path, out_dir: Path) -> str:
    """A path relative to the task file, relative to the exported one (URLs and absolute paths stay)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", value) or Path(value).is_absolute():
        return value
    path = (origin / value).resolve()
    if os.path.commonpath([path, out_dir.resolve()]) == path.anchor:  # nothing in common: say where
        return str(path)
    return os.path.relpath(path, out_dir)


def _rebase_step(step: dict[str, Any], origin: Path, out_dir: Path, base_url: str | None) -> dict[str, Any]:
    ((verb, arg),) = step.items()
    if verb == "open" and isinstance(arg, str) and not base_url:
        return {"open": _rebase(arg, origin, out_dir)}
    if verb == "click" and isinstance(arg, dict) and "image" in arg:
        return {"click": {**arg, "image": _rebase(arg["image"], origin, out_dir)}}
    if verb == "upload" and isinstance(arg, dict):
        return {"upload": {**arg, "file": _rebase(arg["file"], origin, out_dir)}}
    return step


def _from_params(rec: StepRecord) -> dict[str, Any] | None:
    """A scripted step of the Python API, from its record (None: not one a task file has)."""
    p = rec.params
    nth = p.get("nth")

    def target() -> Any:
        t = p.get("target")
        if nth and t is not None:
            return {**({"text": t} if isinstance(t, str) else t), "nth": nth}
        return t

    match rec.kind:
        case "open":
            return {"open": p["url"]}
        case "click" | "double_click" | "right_click" | "hover" if p.get("target") is not None:
            return {rec.kind: target()}
        case "type":
            if p.get("into") is None:
                return {"type": p["text"]}
            return {
                "type": {
                    "text": p["text"],
                    "into": p["into"],
                    **({"clear": False} if p.get("clear") is False else {}),
                }
            }
        case "key":
            return {"key": "+".join(p["keys"])}
        case "scroll":
            args = {k: p[k] for k in ("direction", "amount", "target") if p.get(k) is not None}
            return {"scroll": args}
        case "see":
            return {"see": p["text"]}
        case "wait_for" if p.get("text") is not None:
            return {"wait_for": {"text": p["text"]} if isinstance(p["text"], str) else p["text"]}
        case "select":
            return {"select": {k: p[k] for k in ("option", "field") if p.get(k) is not None}}
        case "drag":
            return {"drag": {"from": p["from"], "to": p["to"]}}
    return None


def export_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Exported:
    """The task file for ``run_dir``, written to ``out`` when given (pictures for image targets are saved
    next to it, in ``<stem>.images/``; without ``out`` no picture can be, and such steps stay the model's)."""
    run = read_run(run_dir)
    if not run.steps:
        raise ConfigError(f"{run_dir}: the run recorded no steps to export")
    out_path = Path(out).resolve() if out is not None else None
    ex = _Exporter(run, out_path)
    meta = run.meta
    spec: dict[str, Any] = dict(meta.get("task_spec") or {})
    origin = Path(meta.get("task_file") or ".").resolve().parent
    out_dir = out_path.parent if out_path else Path.cwd()
    browser = (spec.get("driver") or {}).get("browser") if isinstance(spec.get("driver"), dict) else None
    base_url = browser.get("base_url") if isinstance(browser, dict) else None
    passed = [r for r in run.steps if r.outcome == "passed"]
    failed = next((r for r in run.steps if r.outcome != "passed"), None)

    body: list[_Out] = []
    source_steps: list[dict[str, Any]] = spec.get("steps") or []
    if source_steps and all(r.task_step is not None for r in run.steps):
        reached = {r.task_step for r in run.steps}
        for i, src in enumerate(source_steps):
            if i not in reached:
                break
            verb = next(iter(src))
            records = [r for r in passed if r.task_step == i]
            if failed is not None and failed.task_step == i:
                break
            if verb in MODEL_VERBS:
                body += _model_step(ex, verb, src, records)
            else:
                step = _rebase_step(src, origin, out_dir, base_url)
                body.append(_Out(step))
                ex.last_target = _target_of(step)
    else:
        goals: list[StepRecord] = []  # a goal's steps, written together under the goal
        for k, rec in enumerate(passed):
            if rec.kind == "goal":
                goals.append(rec)
                after = passed[k + 1] if k + 1 < len(passed) else None
                if (
                    after is None
                    or after.kind != "goal"
                    or after.params.get("goal") != rec.params.get("goal")
                ):
                    body += _model_step(ex, "goal", {"goal": str(rec.params.get("goal", ""))}, goals)
                    goals = []
            elif rec.kind == "act":
                body += _model_step(ex, "act", {"act": rec.params.get("instruction", rec.instruction)}, [rec])
            elif rec.kind == "check":
                body += _model_step(
                    ex, "check", {"check": rec.params.get("statement", rec.instruction)}, [rec]
                )
            elif rec.kind == "ask":
                body += _model_step(ex, "ask", {"ask": rec.params.get("question", rec.instruction)}, [rec])
            elif rec.kind in ("locate", "read"):
                continue
            else:
                made = _from_params(rec)
                body.append(
                    _Out(made)
                    if made
                    else _Out(None, f"step {rec.index} ({rec.kind} {rec.instruction!r}) has no task step")
                )
    body = _tidy(body)
    left = [o.why for o in body if o.model]
    header = {k: v for k, v in spec.items() if k not in ("steps", "version")}
    header["name"] = f"{spec.get('name') or meta.get('task') or 'run'} (exported)"
    if not left:
        header.pop("model", None)
    if browser and browser.get("storage_state"):
        browser["storage_state"] = _rebase(browser["storage_state"], origin, out_dir)
    text = _write(header, body, run, failed, left)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text, encoding="utf-8")
    return Exported(
        text,
        scripted=sum(1 for o in body if o.step and not o.model),
        left=left,
        images=ex.images,
        source_status=str(meta.get("status", "")),
    )


def _target_of(step: dict[str, Any]) -> Any:
    ((verb, arg),) = step.items()
    return arg if verb in ("click", "double_click", "right_click", "hover") else None


def _model_step(ex: _Exporter, verb: str, src: dict[str, Any], records: list[StepRecord]) -> list[_Out]:
    if verb == "ask":
        return [_left(src, "an ask's answer is the model's reading of the screen")]
    if verb == "check":
        rec = records[0] if records else None
        if rec is not None:
            reason = (rec.result or {}).get("reason", "") if isinstance(rec.result, dict) else ""
            seen = ex.seen(rec, [str(src["check"]), str(reason)], f"the model's check {src['check']!r}")
            if seen:
                return seen
        return [_left(src, "none of the texts the check relied on is on the screen")]
    out: list[_Out] = []
    for rec in records:
        for o in ex.model_record(rec):
            if o.model and verb == "act":  # the task's own instruction, not the model's narration of it
                o.step = src
            out.append(o)
            if o.step is not None:
                ex.last_target = _target_of(o.step)
    if out:
        said = src[verb] if isinstance(src[verb], str) else src[verb].get("goal")
        first = out[0]
        first.comment = f"{verb}: {said}" + (f" — {first.comment}" if first.comment else "")
    return out


def _tidy(body: list[_Out]) -> list[_Out]:
    """A ``see:`` right after the same ``see:`` (the model's answer, then a check on the same text) goes.
    A model's wait becomes a ``wait_for:`` the target of the step after it (the run waited for the
    screen to show it); with no such step, a comment."""
    out: list[_Out] = []
    for i, o in enumerate(body):
        before = next((b.step for b in reversed(out) if b.step is not None), None)
        if o.step is not None and "see" in o.step and before == o.step:
            continue
        if o.wait is None:
            out.append(o)
            continue
        said = f"the model waited {o.wait:g} s here"
        after = next((b for b in body[i + 1 :] if b.step is not None), None)
        target = _target_of(after.step) if after is not None and after.step is not None else None
        if target is None or (isinstance(target, dict) and "image" in target):
            out.append(_Out(None, f"{said}; the next step is no target to wait for"))
        else:
            out.append(_Out({"wait_for": target}, f"{said}, for what it acted on next"))
    return out


def _flow(value: Any) -> str:
    """One value in YAML's flow style, on one line."""
    text = yaml.safe_dump(value, sort_keys=False, allow_unicode=True, default_flow_style=True, width=1 << 16)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _dump(step: dict[str, Any]) -> str:
    ((verb, arg),) = step.items()
    return f"  - {verb}: {_flow(arg)}\n"


def _write(
    header: dict[str, Any], body: list[_Out], run: RunData, failed: StepRecord | None, left: list[str]
) -> str:
    lines = [
        f"# Exported by `pixelpilot export` from the run {run.path.name} ({run.meta.get('status', '?')}).",
    ]
    if left:
        lines.append(f"# {len(left)} step(s) are left to the model: run it with a model (--model).")
    else:
        lines.append("# Every step is scripted: it runs without a model.")
    if failed is not None:
        lines.append(
            f"# The run failed at its step {failed.index} ({failed.kind} {failed.instruction!r}): the export stops there."
        )
    text = "\n".join(lines) + "\n"
    text += yaml.safe_dump(header, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    text += "steps:\n"
    for o in body:
        if o.comment:
            text += "".join(f"  # {c}\n" for c in o.comment.splitlines())
        if o.step is not None:
            text += _dump(o.step)
    return text


def cmd_export(args: Any, console: Any) -> int:
    """``pixelpilot export RUN_DIR [-o task.yaml]``."""
    from rich.markup import escape

    from pixelpilot.tasks.runner import ExitCode

    try:
        done = export_run(args.run_dir, args.out)
    except (FileNotFoundError, ConfigError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return ExitCode.USAGE
    if args.out is None:
        sys.stdout.write(done.text)
    say = console if args.out is not None else Console(stderr=True)
    what = f"{done.scripted} scripted step(s)" + (
        f", {len(done.left)} left to the model" if done.left else ", no model needed"
    )
    if done.images:
        what += f", {len(done.images)} picture(s) in {done.images[0].parent}"
    say.print(
        escape(f"exported {args.run_dir} ({done.source_status}): {what}")
        + (f" → {escape(str(args.out))}" if args.out else ""),
        highlight=False,
    )
    for why in done.left:
        say.print(f"  [yellow]model:[/] {escape(why)}", highlight=False)
    return ExitCode.PASSED
