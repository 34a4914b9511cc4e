"""Merge step_latency.json files (one per model size, as the accelerator runs wrote them) into one
table and one picture.

    python benchmarks/step_latency_report.py RUN.json [RUN.json ...] --name step_latency_h100
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--name", default="step_latency")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in args.runs]
    rows = [r for run in runs for r in run["rows"]]
    meta = {
        "device": runs[0]["meta"]["device"],
        "torch": runs[0]["meta"]["torch"],
        "transformers": runs[0]["meta"]["transformers"],
        "commands": [r["meta"]["command"] for r in runs],
    }
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    plot(rows, args.out / f"{args.name}.png", meta["device"])
    lines = [
        "| run | size | screen | reply | path | tokens in/out | prefill ms | ms/token (engine: ms/pass) | passes | step ms p50 | p90 | warm-up s | peak GiB | same text |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('run', '')} | {r['size']} | {r['screen']} | {r['output']} | {r['path']} | {r['tokens_in']}/{r['tokens_out']} | {r['prefill_ms']} | "
            f"{r['ms_per_token']} | {r.get('forward_passes', r['tokens_out'])} | **{r['step_ms_p50']}** | {r['step_ms_p90']} | {r['warmup_s']} | {r['peak_gib']} | {r['same_text']} |"
        )
    print("\n".join(lines))
    return 0


def plot(rows: list[dict], path: Path, device: str) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keep = [r for r in rows if r["output"] == "tool call"]
    groups = sorted({(r["size"], r["screen"]) for r in keep}, key=lambda g: (g[0], g[1]))
    paths = ["generate (dynamic cache)", "generate (static cache, compiled)", "engine", "engine (int8)"]
    colors = ["#bab0ac", "#4c78a8", "#54a24b", "#b279a2"]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.2
    for i, (p, c) in enumerate(zip(paths, colors, strict=True)):
        xs, ys = [], []
        for gi, g in enumerate(groups):
            r = next((r for r in keep if (r["size"], r["screen"]) == g and r["path"] == p), None)
            if r:
                xs.append(gi + (i - 1.5) * width)
                ys.append(r["step_ms_p50"])
        bars = ax.bar(xs, ys, width, label=p, color=c)
        for b, y in zip(bars, ys, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, y, f"{y:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [f"{s.upper()} {sc}" for s, sc in groups])
    ax.set_ylabel("one step, ms (p50, log scale)")
    ax.set_title(f"Qwen3-VL agent step (screenshot in → tool call out) on {device}", fontsize=10)
    for target, size in ((100, "2b"), (170, "4b")):
        xs = [gi for gi, g in enumerate(groups) if g[0] == size]
        if xs:
            ax.hlines(target, min(xs) - 0.45, max(xs) + 0.45, colors="#e45756", linestyles="--", lw=1)
            ax.text(max(xs) + 0.45, target, f" goal {target} ms", color="#e45756", fontsize=7, va="center")
    ax.legend(fontsize=8, loc="upper center", ncol=4, bbox_to_anchor=(0.5, -0.1), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
