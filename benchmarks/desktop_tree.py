"""The desktop's accessibility tree vs OCR on Debian applications under Xvfb: how long reading the tree
takes, and resolving a text target through the tree vs through OCR, on the same frame.

    python benchmarks/desktop_tree.py --reps 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _timing import p90, timed  # noqa: E402 - benchmarks/ is on sys.path when run as a script

from pixelpilot.agent import Agent
from pixelpilot.agent.errors import LocateError
from pixelpilot.agent.locate import Located, Locator
from pixelpilot.drivers.desktop import DesktopDriver

ROOT = Path(__file__).resolve().parent.parent

APPS = [
    # (label, command, steps to reach the screen measured, text targets)
    ("Mousepad (GTK 3), main window", ["mousepad", "--disable-server"], [], ["File", "Help"]),
    (
        "Mousepad, Save As file chooser",
        ["mousepad", "--disable-server"],
        ["File", "Save As"],
        ["Cancel", "Save"],
    ),
    (
        "zenity --forms",
        ["zenity", "--forms", "--add-entry=Name", "--add-entry=City", "--add-password=Password"],
        [],
        ["OK", "Cancel"],
    ),
    ("Qt Linguist (Qt 6), main window", ["/usr/lib/qt6/bin/linguist", "{ts}"], [], ["Done and Next", "Help"]),
]
TS = """<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS><TS version="2.1" language="de_DE"><context><name>MainWindow</name>
<message><source>Good morning</source><translation type="unfinished"></translation></message>
</context></TS>
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "desktop_tree.md")
    args = ap.parse_args(argv)
    n = args.reps
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-bench-"))
    (scratch / "app_de.ts").write_text(TS, encoding="utf-8")
    os.environ["XDG_CONFIG_HOME"] = str(scratch / "config")  # Linguist's settings stay there
    for label, cmd, path, targets in APPS:
        cmd = [c.replace("{ts}", str(scratch / "app_de.ts")) for c in cmd]
        with tempfile.TemporaryDirectory() as tmp, DesktopDriver.start(size=(1280, 800)) as d:
            d.launch(cmd, cwd=tmp, log=Path(tmp) / "app.log")
            agent = Agent(d)
            for step in path:
                agent.click(step)
            time.sleep(0.5)
            nodes = d.ui_tree()
            tree_ms = timed(d.ui_tree, n)
            screen = d.observe()
            by_tree = Locator(use_ocr=False)
            by_ocr = Locator()
            ocr_screen = d.observe(tree=False)
            by_ocr.ocr(ocr_screen)  # the OCR models load once, not in the timings
            for target in targets:

                def via_tree(t: str = target, loc: Locator = by_tree, d: DesktopDriver = d) -> None:
                    loc.text(d.observe(), t)

                def via_ocr(t: str = target, loc: Locator = by_ocr, d: DesktopDriver = d) -> None:
                    loc._ocr_cache.clear()
                    loc.text(d.observe(tree=False), t)

                tree_hit = by_tree.text(screen, target)
                try:
                    ocr_hit: Located | None = by_ocr.text(ocr_screen, target)
                except LocateError:  # an icon-only button: OCR has nothing to read
                    ocr_hit = None
                t_tree = timed(via_tree, n)
                t_ocr = timed(via_ocr, max(3, n // 4)) if ocr_hit is not None else []
                rows.append((label, len(nodes), tree_ms, target, t_tree, t_ocr, tree_hit, ocr_hit))
                print(
                    f"{label:34} {target:8} tree {statistics.median(t_tree):7.1f} ms  "
                    f"ocr {statistics.median(t_ocr) if t_ocr else float('nan'):7.1f} ms"
                )
    lines = [
        "# The desktop's accessibility tree vs OCR",
        "",
        f"Command: `python benchmarks/desktop_tree.py --reps {n}`  ",
        f"Machine: {platform.machine()}, {__import__('os').cpu_count()} cores (shared), Xvfb 1280×800, "
        f"Debian applications. Date: {time.strftime('%Y-%m-%d')}.  ",
        "Tree read: `DesktopDriver.ui_tree()` (AT-SPI over D-Bus, pipelined a tree level at a time). Resolving a "
        "target: a fresh frame, then the locator chain on the tree alone, or on OCR alone (models loaded "
        "beforehand). Median and p90 in ms.",
        "",
        "| screen | nodes | tree read | target | via tree | via OCR | tree box | OCR box |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, count, tree_ms, target, t_tree, t_ocr, th, oh in rows:
        lines.append(
            f"| {label} | {count} | {statistics.median(tree_ms):.1f} (p90 {p90(tree_ms):.1f}) | {target} | "
            f"{statistics.median(t_tree):.1f} (p90 {p90(t_tree):.1f}) | "
            + (f"{statistics.median(t_ocr):.0f} (p90 {p90(t_ocr):.0f})" if t_ocr else "not found (an icon)")
            + f" | {th.box.as_list() if th.box else '—'} | "
            f"{[round(v) for v in oh.box.as_list()] if oh is not None and oh.box else '—'} |"
        )
    lines += [
        "",
        "The tree also knows what OCR cannot: roles (a button from a label), the focused field, the text of a "
        "field and a password field's length, widgets under a menu or beside an icon with no text.",
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
