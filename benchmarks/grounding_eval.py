"""Grounding accuracy, ScreenSpot-style, on pages whose DOM gives the ground truth.

The pages: the demo app (examples/demo_app) and MiniWoB++ tasks (PyPI ``miniwob``, seed 0), each rendered
in headless Chromium at several viewport sizes and device scales (``--viewports``, ``--scales``). On each,
every element with an accessible name that is on screen, at least 4×4 pixels and the only one with that
name becomes a question: the model is asked where it is with the cookbook's grounding prompts — the
``point_2d`` one and the ``bbox_2d`` one (``agent/qwen/prompts/grounding_*.j2``, the image first, no
system prompt) — and scores a hit when its point (a box's centre) falls inside the element's box.

    python benchmarks/grounding_eval.py --model qwen3-vl-4b
    python benchmarks/grounding_eval.py --model openai:http://gpu-host:8000/v1 --viewports 1280x800 1920x1080
    python benchmarks/grounding_eval.py --model /models/GUI-Owl-1.5-7B --profile gui-owl

Written to ``--out`` (JSON, one record per question, rewritten after each page: an interrupted run
resumes) and ``.md`` next to it: accuracy per prompt, role, element size and page configuration.
``--model oracle`` answers from the DOM itself: it proves the scoring (100 %), not a model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _eval import add_model_args, describe, load, resume, save  # noqa: E402
from miniwob_scripted import open_task, start_episode  # noqa: E402

from pixelpilot.agent.errors import ModelError  # noqa: E402
from pixelpilot.agent.models import ScriptedModel  # noqa: E402
from pixelpilot.agent.qwen import grid  # noqa: E402
from pixelpilot.agent.qwen.parse import parse_grounding  # noqa: E402
from pixelpilot.agent.qwen.prompts import grounding_prompt  # noqa: E402
from pixelpilot.drivers import BrowserDriver  # noqa: E402
from pixelpilot.drivers.base import UINode  # noqa: E402
from pixelpilot.tools.ocr import normalize  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo_app" / "index.html"
PAGES = [
    "demo",
    "click-button",
    "click-link",
    "click-checkboxes",
    "click-tab",
    "login-user",
    "enter-password",
    "click-option",
]
"""``demo`` and MiniWoB++ task names."""
SIZES = ((32 * 32, "small (< 32×32)"), (96 * 96, "medium (< 96×96)"), (float("inf"), "large"))
"""Element sizes in CSS pixels² (the screenshot's at scale 1)."""


def size_class(node: UINode, scale: float) -> str:
    area = node.box.width * node.box.height / (scale * scale)
    return next(name for limit, name in SIZES if area < limit)


def targets(tree: list[UINode], width: int, height: int) -> list[UINode]:
    """Elements with an accessible name, wholly on screen, ≥ 4×4 pixels, and the only one with that name."""
    named = [
        n
        for n in tree
        if (n.name or "").strip()
        and len(n.name) <= 80
        and n.box.width >= 4
        and n.box.height >= 4
        and n.box.x >= 0
        and n.box.y >= 0
        and n.box.x + n.box.width <= width
        and n.box.y + n.box.height <= height
    ]
    counts: dict[str, int] = {}
    for n in tree:
        key = normalize(n.name or "")
        counts[key] = counts.get(key, 0) + 1
    return [n for n in named if counts[normalize(n.name)] == 1]


class Oracle:
    """Answers with the element's own box (point: its centre): the scoring's check."""

    def __init__(self) -> None:
        self.truth: tuple[UINode, tuple[int, int], str] | None = None
        self.model = ScriptedModel(self._reply, name="oracle")

    def _reply(self, prompt: Any) -> str:
        assert self.truth is not None
        node, (w, h), kind = self.truth
        b = node.box
        if kind == "point":
            x, y = b.center
            return json.dumps([{"point_2d": [round(x * 1000 / w), round(y * 1000 / h)], "label": node.name}])
        box = [b.x * 1000 / w, b.y * 1000 / h, (b.x + b.width) * 1000 / w, (b.y + b.height) * 1000 / h]
        return json.dumps([{"bbox_2d": [round(v) for v in box], "label": node.name}])


def ask(model: Any, node: UINode, screen: Any, kind: str) -> dict[str, Any]:
    size = (screen.width, screen.height)
    t = time.perf_counter()
    try:
        reply = model.generate(grounding_prompt(node.name, screen.image, kind=kind))
    except ModelError as exc:
        return {"hit": False, "error": f"{type(exc).__name__}: {exc}", "ms": None}
    ms = round((time.perf_counter() - t) * 1000, 1)
    try:
        item = parse_grounding(reply.text)[0]
        if item.point is not None:
            x, y = grid.grid_to_pixels(item.point, size, 1000)
        else:
            assert item.bbox is not None
            x0, y0 = grid.grid_to_pixels(item.bbox[:2], size, 1000)
            x1, y1 = grid.grid_to_pixels(item.bbox[2:], size, 1000)
            x, y = (x0 + x1) / 2, (y0 + y1) / 2
    except (ModelError, grid.OffScreen) as exc:
        return {
            "hit": False,
            "error": f"{type(exc).__name__}: {str(exc)[:120]}",
            "ms": ms,
            "raw": reply.text[:200],
        }
    b = node.box
    hit = b.x <= x <= b.x + b.width and b.y <= y <= b.y + b.height
    return {"hit": hit, "point": [round(x), round(y)], "ms": ms, "tokens_in": reply.tokens_in}


def pages(args: argparse.Namespace) -> Iterator[tuple[str, tuple[int, int], float]]:
    for viewport in args.viewports:
        for scale in args.scales:
            for page in args.pages:
                yield page, viewport, scale


def show(driver: BrowserDriver, page: str) -> None:
    if page == "demo":
        driver.page.goto(DEMO.as_uri())
    else:
        open_task(driver, page)
        start_episode(driver.page, 0)
        driver.page.evaluate("core.EPISODE_MAX_TIME = 3600000")


def table(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    def acc(rs: list[dict[str, Any]]) -> str:
        ok = sum(r["hit"] for r in rs)
        return f"{ok}/{len(rs)} ({100 * ok / len(rs):.1f} %)" if rs else "–"

    def group(key: str) -> list[str]:
        out = [f"| {key} | point_2d | bbox_2d |", "|---|---|---|"]
        for value in sorted({str(r[key]) for r in rows}):
            sel = [r for r in rows if str(r[key]) == value]
            out.append(
                f"| {value} | {acc([r for r in sel if r['prompt'] == 'point'])} | {acc([r for r in sel if r['prompt'] == 'bbox'])} |"
            )
        return out

    ms = [r["ms"] for r in rows if r.get("ms") is not None]
    lines = [
        f"# Grounding accuracy on DOM-labelled pages: {config['model']}",
        "",
        f"Command: `{config['command']}`  ",
        f"Machine: {config['machine']}. Date: {config['date']}. A hit: the answer's point (a box's centre) inside "
        "the element's box. Elements: accessible name, wholly on screen, ≥ 4×4 px, unique name.",
        "",
        f"**point_2d: {acc([r for r in rows if r['prompt'] == 'point'])} · bbox_2d: {acc([r for r in rows if r['prompt'] == 'bbox'])}**"
        + (f" · median {statistics.median(ms):.0f} ms per question" if ms else ""),
        "",
        *group("role"),
        "",
        *group("size"),
        "",
        *group("config"),
        "",
        *group("page"),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(ap)
    ap.add_argument("--pages", nargs="+", default=PAGES, help="demo and MiniWoB++ task names")
    ap.add_argument(
        "--viewports",
        nargs="+",
        default=[(1280, 800), (800, 600)],
        type=lambda v: tuple(int(x) for x in v.lower().split("x")),
        help="CSS pixels, WxH",
    )
    ap.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0], help="device scale factors")
    ap.add_argument("--prompts", nargs="+", choices=["point", "bbox"], default=["point", "bbox"])
    ap.add_argument("--max-targets", type=int, default=30, help="questions per page and prompt, at most")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/grounding_eval.json"))
    args = ap.parse_args(argv)
    config = describe("grounding_eval.py", args, argv)
    rows = resume(args.out, config, "questions", ("model",))
    done = {r["config"] + "/" + r["page"] for r in rows}
    oracle = Oracle() if args.model == "oracle" else None
    if oracle is not None:
        model: Any = oracle.model
    else:
        model = load(args)
    plan = list(pages(args))
    started = time.perf_counter()
    for n, (page, viewport, scale) in enumerate(plan, 1):
        key = f"{viewport[0]}x{viewport[1]}@{scale:g}x"
        if f"{key}/{page}" in done:
            continue
        with BrowserDriver.launch(viewport=viewport, device_scale_factor=scale) as driver:
            show(driver, page)
            screen = driver.observe()
            found = targets(screen.tree or [], screen.width, screen.height)[: args.max_targets]
            for node in found:
                for kind in args.prompts:
                    if oracle is not None:
                        oracle.truth = (node, (screen.width, screen.height), kind)
                    r = ask(model, node, screen, kind)
                    rows.append(
                        {
                            "page": page,
                            "config": key,
                            "prompt": kind,
                            "name": node.name,
                            "role": node.role,
                            "size": size_class(node, scale),
                            "box": [round(v, 1) for v in node.box.as_list()],
                            **r,
                        }
                    )
        save(args.out, config, "questions", rows)
        mine = [r for r in rows if r["config"] == key and r["page"] == page]
        ok = sum(r["hit"] for r in mine)
        eta = (time.perf_counter() - started) / n * (len(plan) - n)
        print(f"[{n}/{len(plan)}] {page:<18} {key:<14} {ok}/{len(mine)} hits  ETA {eta:.0f} s", flush=True)
    args.out.with_suffix(".md").write_text(table(config, rows))
    ok = sum(r["hit"] for r in rows)
    print(f"{ok}/{len(rows)} hits → {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
