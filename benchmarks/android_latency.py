"""Android driver latency through adbutils against the fake adb server (tests/support/fake_adb.py):
the protocol overhead only — a real phone adds its own screencap (≈0.3–1 s) and input latency.

    python benchmarks/android_latency.py --reps 50
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _timing import timed  # noqa: E402

from pixelpilot.drivers.android import AndroidDriver  # noqa: E402
from pixelpilot.tools import actions as A  # noqa: E402
from tests.support.fake_adb import FakeAdbServer, FakeDevice  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "android_latency.md")
    args = ap.parse_args(argv)
    dev = FakeDevice("fake-5554")
    rows: dict[str, list[float]] = {}
    with FakeAdbServer([dev]) as srv, AndroidDriver.connect(port=srv.port) as d:
        png = dev.render()
        rows["fake device renders its 1080×1920 PNG (not protocol)"] = timed(dev.render, args.reps)
        rows["screencap -p through adbutils (shell v1)"] = timed(d._screencap, args.reps)
        rows["observe() (screencap + decode, tree deferred)"] = timed(lambda: d.observe(), args.reps)
        rows["tap: input tap (shell2 with exit code)"] = timed(
            lambda: d.perform(A.Click(at=(10, 1000))), args.reps
        )
        rows["uiautomator dump + sync pull + parse"] = timed(d.ui_tree, args.reps)
    lines = [
        "# Android driver latency against the fake adb server",
        "",
        f"Command: `python benchmarks/android_latency.py --reps {args.reps}`  ",
        f"Machine: {platform.machine()}, 2 shared cores; adbutils over TCP on 127.0.0.1 to the fake server. Date: {time.strftime('%Y-%m-%d')}.",
        f"The screenshot is a {len(png) // 1024} KiB PNG; the fake's own rendering time is listed so it can be subtracted.",
        "",
        "| operation | median ms | p90 ms | n |",
        "|---|---|---|---|",
    ]
    for k, v in rows.items():
        lines.append(
            f"| {k} | {statistics.median(v):.2f} | {sorted(v)[int(0.9 * (len(v) - 1))]:.2f} | {len(v)} |"
        )
    net = statistics.median(rows["screencap -p through adbutils (shell v1)"]) - statistics.median(
        rows["fake device renders its 1080×1920 PNG (not protocol)"]
    )
    lines += [
        "",
        f"Protocol and client overhead of a screenshot, rendering subtracted: about {net:.1f} ms.",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
