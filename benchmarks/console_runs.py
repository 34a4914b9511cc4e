"""The console with 10,000 run directories: index rebuild time, API time and page load time.

python benchmarks/console_runs.py --runs 10000
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_runs(runs: Path, n: int) -> None:
    runs.mkdir(parents=True)
    statuses = ["passed"] * 7 + ["failed", "error", "interrupted"]
    t0 = 1_790_000_000.0
    for i in range(n):
        d = runs / f"20261123-{i:06d}-task-{i % 37}"
        (d / "frames").mkdir(parents=True)
        started = t0 + i * 61
        meta = {
            "task": f"task-{i % 37}",
            "task_file": f"tasks/task-{i % 37}.yaml",
            "driver": ["browser", "desktop", "android"][i % 3],
            "model": None if i % 4 else "qwen3-vl-4b",
            "status": statuses[i % len(statuses)],
            "started": started,
            "ended": started + 3 + i % 50,
            "steps": 5,
            "total_steps": 5,
            "error": None,
        }
        (d / "run.json").write_text(json.dumps(meta))
        step = {
            "index": 0,
            "kind": "click",
            "instruction": "Sign in",
            "outcome": "passed",
            "timings": {"total": 80.0},
        }
        (d / "steps.jsonl").write_text("\n".join(json.dumps({**step, "index": k}) for k in range(5)) + "\n")


def main(argv: list[str] | None = None) -> int:
    import httpx

    from pixelpilot.drivers import BrowserDriver
    from pixelpilot.tasks.console.app import create_app
    from pixelpilot.tasks.console.index import RunIndex
    from tests.integration.test_console import Server, free_port

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "console_runs.md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        t = time.perf_counter()
        make_runs(runs, args.runs)
        made = time.perf_counter() - t
        ix = RunIndex(runs)
        t = time.perf_counter()
        cold = ix.refresh()
        cold_s = time.perf_counter() - t
        warm = [ix.refresh()["ms"] for _ in range(5)]
        for d in sorted(p for p in runs.iterdir() if not p.name.startswith("."))[:10]:
            meta = json.loads((d / "run.json").read_text())
            (d / "run.json").write_text(json.dumps({**meta, "status": "passed"}))
        ten = ix.refresh()
        ix.close()
        server = Server(create_app(runs, refresh_interval=0), free_port())
        try:

            def timed(path: str) -> float:
                ts = []
                for _ in range(7):
                    t = time.perf_counter()
                    r = httpx.get(server.url + path, timeout=60)
                    ts.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
                return statistics.median(ts)

            api_first = timed("/api/runs?limit=200")
            api_filter = timed("/api/runs?q=task-7&status=failed&sort=duration&order=asc&limit=200")
            total = httpx.get(server.url + "/api/runs?limit=1").json()["total"]
            loads = []
            with BrowserDriver.launch() as d:
                for _ in range(5):
                    t = time.perf_counter()
                    d.page.goto(server.url + "/")
                    d.page.wait_for_selector("body[data-loaded='1']")
                    loads.append((time.perf_counter() - t) * 1000)
                rows = d.page.locator("#runs tbody tr").count()
                d.page.screenshot(path=str(args.out.with_suffix(".png")))
        finally:
            server.stop()
    page_ms = statistics.median(loads)
    lines = [
        f"# The console with {args.runs:,} run directories",
        "",
        f"Command: `python benchmarks/console_runs.py --runs {args.runs}`  ",
        f"Machine: {platform.machine()}, 2 shared cores, local disk; headless Debian Chromium. Date: {time.strftime('%Y-%m-%d')}.",
        f"Made {args.runs:,} run directories (run.json + 5 steps each) in {made:.1f} s.",
        "",
        "| what | time |",
        "|---|---|",
        f"| index rebuild from nothing ({cold['runs']:,} runs read into SQLite) | {cold_s * 1000:.0f} ms |",
        f"| refresh, nothing changed (a stat of each run.json; of steps.jsonl too while a run is going) | {statistics.median(warm):.0f} ms |",
        f"| refresh after 10 runs changed | {ten['ms']:.0f} ms ({ten['updated']} re-read) |",
        f"| `GET /api/runs?limit=200` (refresh + newest 200 of {total:,}) | {api_first:.0f} ms |",
        f"| `GET /api/runs` filtered (text + status, sorted by duration) | {api_filter:.0f} ms |",
        f"| runs page in Chromium: navigation until the table shows ({rows} rows) | {page_ms:.0f} ms |",
        "",
        'Medians of 5–7 repetitions. The page asks for 200 rows at a time ("Show more" adds 200); filtering and',
        "sorting run in SQLite, so their cost does not grow with what the page shows.",
        "",
        f"![the runs page with {args.runs:,} runs]({args.out.with_suffix('.png').name})",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
