"""Per-step overhead of pixelpilot around the browser vs a hand-written Playwright script.

Both do the demo task's 18 steps after the page is open (examples/demo.yaml) in the same browser,
alternating, N times each. pixelpilot is measured twice: recording a run directory (as
`pixelpilot run` does: a frame per step, steps.jsonl, report) and without recording.

    python benchmarks/overhead.py --reps 7
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import expect

from pixelpilot.agent import Agent
from pixelpilot.drivers import BrowserDriver

ROOT = Path(__file__).resolve().parent.parent
URL = (ROOT / "examples" / "demo_app" / "index.html").as_uri()


def playwright_script(page) -> None:
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wonderland")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Welcome, alice").wait_for()
    page.get_by_text("Password reset").hover()
    page.mouse.wheel(0, 400)
    page.get_by_text("Quarterly report").click()
    expect(page.get_by_text("Opened: Quarterly report")).to_be_visible()
    page.get_by_role("button", name="New order").click()
    page.get_by_label("Product").select_option(label="Bananas")
    page.get_by_label("Quantity").fill("3")
    page.get_by_label("Ship to").select_option(label="Japan")
    page.get_by_label("Gift wrap").click()
    page.get_by_label("I accept the terms").click()
    page.get_by_role("button", name="Place order").click()
    page.get_by_text("Order placed").wait_for()
    expect(page.get_by_text("3 × Bananas to Japan, gift wrapped")).to_be_visible()
    page.get_by_role("button", name="Close").click()
    expect(page.get_by_text("Welcome, alice")).to_be_visible()


def pixelpilot_script(agent: Agent) -> None:
    agent.type("alice", into="Username")
    agent.type("wonderland", into="Password")
    agent.click("Sign in")
    agent.wait_for("Welcome, alice")
    agent.scroll("down", 400, target="Password reset")
    agent.click("Quarterly report")
    agent.see("Opened: Quarterly report")
    agent.click("New order")
    agent.select("Bananas", field="Product")
    agent.type("3", into="Quantity")
    agent.select("Japan", field="Ship to")
    agent.click("Gift wrap")
    agent.click("I accept the terms")
    agent.click("Place order")
    agent.wait_for("Order placed")
    agent.see("3 × Bananas to Japan, gift wrapped")
    agent.click("Close")
    agent.see("Welcome, alice")


STEPS = 18


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overhead")
    args = ap.parse_args(argv)
    times: dict[str, list[float]] = {
        "playwright": [],
        "pixelpilot (no run log)": [],
        "pixelpilot (recording)": [],
    }
    phases: dict[str, list[float]] = {}
    with BrowserDriver.launch(viewport=(1280, 800)) as d, tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps + 1):  # rep 0 warms up
            for name in times:
                d.page.goto(URL)
                d.settle()
                t = time.perf_counter()
                if name == "playwright":
                    playwright_script(d.page)
                else:
                    agent = Agent(d, output=tmp if "recording" in name else None, task="overhead")
                    pixelpilot_script(agent)
                    agent.close()
                    if rep and "recording" in name:
                        for s in agent.steps:
                            for k, v in s.timings.items():
                                phases.setdefault(k, []).append(v)
                elapsed = time.perf_counter() - t
                if rep:
                    times[name].append(elapsed)
                print(f"rep {rep} {name:<26} {elapsed * 1000:7.0f} ms", flush=True)
    write(args, times, phases)
    return 0


def write(args: argparse.Namespace, times: dict[str, list[float]], phases: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = statistics.median(times["playwright"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append((name, med, min(ts), max(ts), med / STEPS, med / base))
    lines = [
        "# Per-step overhead: pixelpilot vs a hand-written Playwright script",
        "",
        f"Command: `python benchmarks/overhead.py --reps {args.reps}`  ",
        f"Machine: {platform.machine()}, 2 shared cores, headless Debian Chromium, viewport 1280×800. Date: {time.strftime('%Y-%m-%d')}.  ",
        f"The demo task's {STEPS} steps after the page is open; same browser, the three variants alternate; "
        f"median of {args.reps} repetitions after one warm-up.",
        "",
        "| variant | median ms | min ms | max ms | ms / step | × Playwright |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {m * 1000:.0f} | {lo * 1000:.0f} | {hi * 1000:.0f} | {ps * 1000:.1f} | {r:.2f} |"
        for n, m, lo, hi, ps, r in rows
    ]
    lines += [
        "",
        "Where a recorded pixelpilot step spends its time (median ms per step, over all steps and repetitions):",
        "",
        "| phase | median ms |",
        "|---|---|",
    ]
    lines += [
        f"| {k} | {statistics.median(v):.1f} |"
        for k, v in sorted(phases.items(), key=lambda kv: -statistics.median(kv[1]))
    ]
    lines += [
        "",
        "Playwright's script takes no screenshots and checks nothing after its actions beyond its own actionability",
        "waits; pixelpilot takes a screenshot before every step (`observe`), reads the UI tree when a step looks for an",
        "element (`locate`), waits until the page is still after each action (`settle`), and reads typed fields back",
        "(`verify`).",
        "",
        "![overhead](overhead.png)",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = [r[0] for r in rows]
    ax.barh(names, [r[4] * 1000 for r in rows], color=["#8c959f", "#2f6fed", "#1a7f37"])
    for i, r in enumerate(rows):
        ax.text(r[4] * 1000 + 1, i, f"{r[4] * 1000:.0f} ms  ({r[5]:.2f}×)", va="center")
    ax.set_xlabel("median ms per step (demo task, 18 steps)")
    ax.set_xlim(0, max(r[4] for r in rows) * 1000 * 1.35)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
