"""Re-run of a 10-step model-driven demo task: cold (every step asks the model) vs cached (decisions
from the last passing run, verified on screen), against a plain Playwright script doing the same
clicks and typing. Same browser, same process, alternating.

The model is scripted (canned replies): its own time is ~0 here, so "cold" shows the framework's cost
of a model step without inference; on a GPU each cold step adds the model's latency (see
benchmarks/results for step latency) and the cached re-run skips all of it.

    python benchmarks/cache_rerun.py --reps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pixelpilot.agent import Agent
from pixelpilot.agent.cache import StepCache
from pixelpilot.agent.models import ScriptedModel
from pixelpilot.agent.qwen import pixels_to_grid
from pixelpilot.drivers import BrowserDriver

ROOT = Path(__file__).resolve().parent.parent
URL = (ROOT / "examples" / "demo_app" / "index.html").as_uri()
GOAL = "Log in as alice, open a new order and accept the terms"


def plan(pos: dict[str, tuple[int, int]]) -> list[tuple[str, object]]:
    return [
        ("click", pos["Username"]),
        ("type", "alice"),
        ("click", pos["Password"]),
        ("type", "wonderland"),
        ("click", pos["Sign in"]),
        ("click", "New order"),
        ("click", "Gift wrap"),
        ("click", "I accept the terms"),
        ("click", "Inbox"),
        ("done", None),
    ]


def replies(d: BrowserDriver, steps: list[tuple[str, object]]) -> list[str]:
    out = []
    for kind, arg in steps:
        if kind == "click":
            if isinstance(arg, str):  # elements of later pages: their positions on that page
                arg = LATER[arg]
            args = {"action": "left_click", "coordinate": list(pixels_to_grid(arg, (1280, 800)))}
        elif kind == "type":
            args = {"action": "type", "text": arg}
        else:
            args = {"action": "terminate", "status": "success"}
        out.append(
            "<tool_call>\n" + json.dumps({"name": "computer_use", "arguments": args}) + "\n</tool_call>"
        )
    return out


LATER: dict[str, tuple[int, int]] = {}


def playwright_script(page) -> None:  # type: ignore[no-untyped-def]
    """The same steps as a user writes them in Playwright: locators, which wait until actionable."""
    page.get_by_label("Username").click()
    page.keyboard.type("alice")
    page.get_by_label("Password").click()
    page.keyboard.type("wonderland")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="New order").click()
    page.get_by_label("Gift wrap").click()
    page.get_by_label("I accept the terms").click()
    page.get_by_role("button", name="Inbox").click()


def playwright_raw(page, steps) -> None:  # type: ignore[no-untyped-def]
    """The floor: the recorded points clicked blind, no waiting and no checks at all."""
    for kind, arg in steps:
        if kind == "click":
            x, y = LATER[arg] if isinstance(arg, str) else arg
            page.mouse.click(x, y)
        elif kind == "type":
            page.keyboard.type(arg)


def plot(times: dict[str, list[float]], base: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(times)
    med = [statistics.median(times[k]) * 1000 for k in names]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    bars = ax.barh(names[::-1], med[::-1], color=["#4c78a8", "#e45756", "#bab0ac", "#54a24b"])
    ax.axvline(base * 1300, color="#333", ls="--", lw=1)
    ax.text(base * 1300, -0.6, " 1.3× target", fontsize=8, va="bottom")
    for b, v in zip(bars, med[::-1], strict=True):
        ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.0f} ms", va="center", fontsize=8)
    ax.set_xlabel("10-step demo task, median wall time (ms)")
    ax.set_xlim(0, max(med) * 1.2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cache_rerun.md")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {
        "playwright script (locators)": [],
        "playwright raw clicks at fixed points": [],
        "pixelpilot cold (model each step)": [],
        "pixelpilot cached re-run": [],
    }
    calls: dict[str, list[int]] = {k: [] for k in times}
    with BrowserDriver.launch() as d, tempfile.TemporaryDirectory() as tmp:
        d.goto(URL)
        pos = {n.name: n.box.center for n in d.observe().tree if n.interactive}
        d.page.fill("#username", "alice"), d.page.fill("#password", "wonderland"), d.page.click("#signin")
        d.page.click("text=New order")
        LATER.update({n.name: n.box.center for n in d.observe().tree if n.interactive})
        steps = plan(pos)
        for rep in range(args.reps + 1):
            d.goto(URL)
            d.settle()
            t = time.perf_counter()
            playwright_script(d.page)
            pw = time.perf_counter() - t
            assert d.page.is_visible("text=You have")
            d.goto(URL)
            d.settle()
            t = time.perf_counter()
            playwright_raw(d.page, steps)
            raw = time.perf_counter() - t
            assert d.page.is_visible("text=You have")
            d.goto(URL)
            d.settle()
            cold_model = ScriptedModel(replies(d, steps))
            cold = Agent(d, model=cold_model, output=Path(tmp) / "runs", task="bench")
            t = time.perf_counter()
            res = cold.run(GOAL, max_steps=12)
            c = time.perf_counter() - t
            cold.close()
            assert res.status == "passed", res.reason
            d.goto(URL)
            d.settle()
            warm_model = ScriptedModel([])
            warm = Agent(
                d,
                model=warm_model,
                cache=StepCache(cold.recorder.path),
                output=Path(tmp) / "runs",
                task="bench",
            )
            t = time.perf_counter()
            res = warm.run(GOAL, max_steps=12)
            w = time.perf_counter() - t
            warm.close()
            assert res.status == "passed", res.reason
            if rep:
                for k, v, n in (
                    (list(times)[0], pw, 0),
                    (list(times)[1], raw, 0),
                    (list(times)[2], c, cold_model.calls),
                    (list(times)[3], w, warm_model.calls),
                ):
                    times[k].append(v)
                    calls[k].append(n)
            print(
                f"rep {rep}: playwright {pw * 1000:.0f} ms (raw {raw * 1000:.0f}), cold {c * 1000:.0f} ms ({cold_model.calls} calls), cached {w * 1000:.0f} ms ({warm_model.calls} calls)",
                flush=True,
            )
    base = statistics.median(times["playwright script (locators)"])
    lines = [
        "# Re-run of a 10-step model-driven task: cold vs cached vs a Playwright script",
        "",
        f"Command: `python benchmarks/cache_rerun.py --reps {args.reps}`  ",
        f"Machine: {platform.machine()}, 2 shared cores, headless Debian Chromium 1280×800, scripted model (no inference time). "
        f"Date: {time.strftime('%Y-%m-%d')}. Median of {args.reps} repetitions after one warm-up, variants alternating.",
        "",
        "| variant | median ms | model calls | × Playwright |",
        "|---|---|---|---|",
    ]
    for k, v in times.items():
        lines.append(
            f"| {k} | {statistics.median(v) * 1000:.0f} | {statistics.median(calls[k]):.0f} | {statistics.median(v) / base:.2f} |"
        )
    cached = statistics.median(times["pixelpilot cached re-run"]) / base
    per_rep = [
        w / p
        for w, p in zip(times["pixelpilot cached re-run"], times["playwright script (locators)"], strict=True)
    ]
    lines += [
        "",
        f"Cached ÷ Playwright within each repetition: median {statistics.median(per_rep):.2f}, "
        f"range {min(per_rep):.2f}–{max(per_rep):.2f} (2 shared cores: single runs vary by ±15%).",
        "",
        f"Target: zero model calls (**{'met' if max(calls['pixelpilot cached re-run']) == 0 else 'NOT met'}**) and ≤ 1.3× the "
        f"Playwright script with locators (**{'met' if cached <= 1.3 else f'not met: {cached:.2f}×'}**).",
        "",
        "Where the cached run's time goes: each click step and the final check take one screenshot (25–45 ms:",
        "headless Chromium composites a fresh frame for it — the verification and the run log need it), check the",
        "cached element's crop and the whole frame against the recorded one (~2–5 ms; the recorded frames are decoded",
        "and prepared ahead in a thread) and act (~4–10 ms, as Playwright). The two typing steps take no frame: they ask",
        "the page which field has the keyboard focus (~3–5 ms) and type only when it is the field the recorded run",
        "typed into; the next step's frame shows the result. An action from the cache does not wait for the page to",
        "settle: the next step checks its frame at once and waits only when it does not match yet.",
        "",
        "What remains is frame-bound on both sides: a Playwright locator click waits until the element is stable over",
        "two animation frames (~34 ms here, the same as one screenshot), 7 times in this script; the cached run takes",
        "8 frames (7 clicks and the final check, which the script does not make). The raw-click script is the floor",
        "nobody writes: blind clicks at recorded points, no waiting, no checks. Before typing was checked by the",
        "keyboard focus, the cached run took a frame before every step (10) and measured 1.42× (555 vs 392 ms).",
        "",
    ]
    lines.insert(5, f"![bars]({args.out.with_suffix('.png').name})\n")
    plot(times, base, args.out.with_suffix(".png"))
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
