"""The engine through a real goal loop's prompts on the GPU: steps of `loop_prompt` with the recent
screenshots riding along (``history_images``), so the prompt grows and changes every step, through
``LocalModel`` (prompt rendering, tokenizing, the grammar) as an agent calls it. Per step: latency,
prompt tokens, tokens reused from the cache, the host time before the GPU starts, graphs captured; at
the end the engine's prefill logits against the model's own forward on the last prompt.

Random weights of the real architecture with the grammar on: every reply is a valid tool call, whatever
the weights say (its length varies; this measures the loop's behaviour, step_latency.py the speed of a
fixed step).

    python benchmarks/engine_loop.py --size 2b --steps 8 --out $OUT
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def screen(k: int, size: tuple[int, int]) -> object:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(k)
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = int(rng.integers(0, size[0] - 200)), int(rng.integers(0, size[1] - 60))
        d.rectangle((x, y, x + 180, y + 40), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        d.text((x + 8, y + 12), f"button {k}-{x}", fill="black")
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2b")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--screen", default="1280x800")
    ap.add_argument("--history-images", type=int, default=4)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    import step_latency as sl

    from pixelpilot.agent.models.local import LocalModel
    from pixelpilot.agent.qwen.parse import parse_reply, reply_to_action
    from pixelpilot.agent.qwen.profile import QwenProfile
    from pixelpilot.agent.qwen.prompts import HistoryItem, loop_prompt
    from pixelpilot.tools.spaces import get_space

    sl.DEVICE = args.device
    w, h = (int(v) for v in args.screen.split("x"))
    import tempfile

    from tests.support.tiny_qwen import build_tokenizer, write_processor_files

    folder = Path(tempfile.mkdtemp(prefix="pp-loop-"))  # the random model saved as a checkpoint
    model = sl.build(args.size)
    model.save_pretrained(folder)
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    build_tokenizer(folder, [])
    write_processor_files(folder)
    t = time.perf_counter()
    lm = LocalModel(
        str(folder),
        device=args.device,
        allow_cpu=True,
        engine=True,  # on the CPU too (a smoke run of this script)
        profile=QwenProfile(history_images=args.history_images),
    )
    load_s = time.perf_counter() - t
    model, eng = lm.model, lm.engine
    assert eng is not None, "the engine is off (no CUDA?)"
    space = get_space("computer_use")
    history: list = []
    rows = []
    goal = "Open the settings page, turn on dark mode and save"
    for k in range(args.steps):
        img = screen(k, (w, h))
        prompt = loop_prompt(space, goal, history, img, lm.profile)
        captured, runs, kept = len(eng.captures), eng.stats["vision_runs"], eng.stats["vision_kept"]
        t = time.perf_counter()
        reply = lm.generate(prompt)
        if args.device == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - t) * 1000
        action, _ = reply_to_action(parse_reply(reply.text), space, (w, h), divisor=space.grid)
        rows.append(
            {
                "step": k + 1,
                "images": len(prompt.images),
                "tokens_in": reply.tokens_in,
                "reused": reply.extra["engine"]["reused_tokens"],
                "tokens_out": reply.tokens_out,
                "passes": reply.extra["engine"]["passes"],
                "step_ms": round(ms, 1),
                "host_before_gpu_ms": round(reply.timings["preprocess"], 2),
                "graphs_captured": len(eng.captures) - captured,
                "vision_runs": eng.stats["vision_runs"] - runs,
                "vision_kept": eng.stats["vision_kept"] - kept,
                "action": action.action,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        history.append(HistoryItem(img, reply.text, f"did {action.action}"))
    # the last prompt once more from an empty cache, against the model's own forward
    prep = eng.inputs.prepare(prompt.messages, prompt.tools, dict(lm.profile.image_size))
    cos, same, _ = sl.prefill_vs_forward(eng, model, prep, lm.inputs(prompt), fresh=True)
    eng._held = []
    summary = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "size": args.size,
        "screen": args.screen,
        "command": "python benchmarks/engine_loop.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "step_ms_median_after_first": statistics.median(r["step_ms"] for r in rows[1:])
        if len(rows) > 1
        else None,
        "last_prompt_logits_cos": round(cos, 5),
        "last_prompt_top1_same": same,
        "prefill_graphs": eng.prefill_graphs,
        "vision_graphs": eng.vision.graphs_on,
        "graph_error": eng.graph_error,
        "load_and_warm_up_s": round(load_s, 2),
        "engine_warm_up_s": round(eng.warmup_s, 2),
    }
    print(json.dumps(summary), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"engine_loop_{args.size}.json").write_text(
        json.dumps({"summary": summary, "steps": rows}, indent=1)
    )
    print(
        "\n| step | images | tokens in | reused | out | passes | step ms | host ms | graphs captured "
        "| vision tower runs (kept features used) | action |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['step']} | {r['images']} | {r['tokens_in']} | {r['reused']} | {r['tokens_out']} | {r['passes']} | "
            f"{r['step_ms']} | {r['host_before_gpu_ms']} | {r['graphs_captured']} | {r['vision_runs']} ({r['vision_kept']}) "
            f"| {r['action']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
