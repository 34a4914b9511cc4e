"""A batch of short browser tasks three ways, wall time end to end:

* ``pixelpilot run DIR --workers 2``: a process (Python and Chromium) per task;
* ``pixelpilot run DIR --workers 2 --keep-drivers``: two long-lived workers, a fresh context per task;
* ``pytest -n 2 DIR``: the same files as ``*.task.yaml`` test items (each xdist worker shares a browser).

Each task opens the demo app, signs in and checks the greeting (4 steps). Writes a Markdown table and a
bar chart.

    python benchmarks/batch_workers.py --tasks 40 --reps 2
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASK = """steps:
  - open: {url}
  - type: {{text: alice, into: Username}}
  - type: {{text: wonderland, into: Password}}
  - click: Sign in
  - see: Welcome, alice
"""


def make_tasks(folder: Path, n: int, suffix: str) -> None:
    url = (ROOT / "examples" / "demo_app" / "index.html").as_uri()
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"t{i:03d}{suffix}").write_text(TASK.format(url=url))


def timed(cmd: list[str], cwd: Path) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "160"})
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        )
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch_workers")
    args = ap.parse_args()
    py = sys.executable
    cli = [py, "-m", "pixelpilot.tasks.cli", "run"]
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_tasks(work / "cli", args.tasks, ".yaml")
        make_tasks(work / "pytest", args.tasks, ".task.yaml")
        configs = {
            "process per task (--workers 2)": [*cli, str(work / "cli"), "--workers", "2"],
            "long-lived workers (--workers 2 --keep-drivers)": [
                *cli,
                str(work / "cli"),
                "--workers",
                "2",
                "--keep-drivers",
            ],
            "pytest -n 2 (*.task.yaml items)": [
                py,
                "-m",
                "pytest",
                "-q",
                "-n",
                "2",
                "-p",
                "no:cacheprovider",
                str(work / "pytest"),
            ],
        }
        for rep in range(args.reps):
            for name, cmd in configs.items():
                out = work / f"runs-{rep}-{len(results.get(name, []))}"
                full = [*cmd, "--output", str(out)]
                seconds = timed(full, work)
                results.setdefault(name, []).append(seconds)
                print(f"rep {rep + 1}: {name}: {seconds:.1f} s", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    lines = [
        f"# {args.tasks} short browser tasks, 2 workers",
        "",
        f"Each task: open the demo app, type a username and a password, click Sign in, see the greeting. "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"median of {args.reps} runs, wall time of the whole command.",
        "",
        f"Command: `python benchmarks/batch_workers.py --tasks {args.tasks} --reps {args.reps}`",
        "",
        "| how | seconds (median) | per task | runs |",
        "|---|---:|---:|---|",
    ]
    for name, xs in results.items():
        med = statistics.median(xs)
        lines.append(f"| {name} | {med:.1f} | {med / args.tasks:.2f} | {', '.join(f'{x:.1f}' for x in xs)} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.6))
    names = list(results)
    ax.barh(names, [statistics.median(results[n]) for n in names], color=["#94a3b8", "#2563eb", "#16a34a"])
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds for {args.tasks} tasks (lower is better)")
    for i, n in enumerate(names):
        ax.text(statistics.median(results[n]), i, f" {statistics.median(results[n]):.0f} s", va="center")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
