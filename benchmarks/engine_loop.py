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
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # for tests.support; an installed pixelpilot comes first
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


def hardware(device: str) -> dict[str, float]:
    """This GPU's measured bf16 matrix rate (FLOP/s) and device-to-device copy rate (bytes/s)."""
    if device != "cuda":
        return {"matmul_flops": float("nan"), "copy_bytes": float("nan")}
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    torch.cuda.synchronize()
    flops = 2 * 8192**3 * n / (time.perf_counter() - t)
    src = torch.empty(1 << 30, device="cuda", dtype=torch.uint8)
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    copy = 2 * (1 << 30) * 10 / (time.perf_counter() - t)  # read + write
    del a, b, src, dst
    torch.cuda.empty_cache()
    return {"matmul_flops": flops, "copy_bytes": copy}


def limit_ms(row: dict, sizes: dict[str, float], hw: dict[str, float]) -> float:
    """The hardware limit of a step's work: the matrix FLOPs of its new prompt tokens and new pictures'
    patches at the measured matrix rate, plus one read of the language model's weights per decode pass
    at the measured copy rate (attention and everything small ignored: a floor, not an estimate)."""
    new_tokens = row["tokens_in"] - row["reused"]
    flops = (
        2 * sizes["text_params"] * new_tokens
        + 2 * sizes["vision_params"] * row["vision_runs"] * sizes["patches"]
    )
    return 1000 * (flops / hw["matmul_flops"] + row["passes"] * sizes["text_bytes"] / hw["copy_bytes"])


def kernel_table(run: object, reps: int, title: str) -> str:
    """The GPU kernels of ``reps`` calls of ``run`` (graph replays: no host work in between), per call:
    name, launches, microseconds, largest first."""
    from torch.profiler import ProfilerActivity, profile

    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            run()
        torch.cuda.synchronize()
    rows = [
        (e.key, e.count / reps, e.self_device_time_total / reps)
        for e in prof.key_averages()
        if e.self_device_time_total > 0
    ]
    rows.sort(key=lambda r: -r[2])
    total = sum(r[2] for r in rows)
    lines = [f"## {title}: {total:.1f} us of kernels a call, {sum(r[1] for r in rows):.0f} launches"]
    lines += [f"{us:9.1f} us {n:6.1f}x  {name[:110]}" for name, n, us in rows[:40]]
    return "\n".join(lines) + "\n"


def pass_kernels(eng: object, prep: dict) -> str:
    """Where a step's GPU time goes, pass by pass: the decode graph, the last prefill graph and the
    vision tower's graph replayed alone, and the host's share of a step (the picture's pixels, the
    prompt's tokens)."""
    out = []
    graph = eng._graphs.get(("decode", 1, eng._view(len(eng._held), coarse=eng.coarse_decode_views)))
    if graph is not None and graph.get("graph") is not None:
        out.append(kernel_table(graph["graph"].replay, 20, "decode pass (1 token)"))
    fills = [k for k in eng._graphs if k[0] == "prefill" and eng._graphs[k].get("graph") is not None]
    if fills:
        out.append(kernel_table(eng._graphs[fills[-1]]["graph"].replay, 5, f"prefill pass {fills[-1]}"))
    for grid, slot in eng.vision._slots.items():
        if slot.get("graph") is not None:
            out.append(kernel_table(slot["graph"].replay, 5, f"vision tower {grid}"))
    _, _, _, h, w = prep["grids"][-1]
    t = time.perf_counter()
    for _ in range(5):
        eng.inputs.pixels(prep["images"][-1], h, w)
    torch.cuda.synchronize()
    out.append(
        f"pixels of one picture (upload, resize, patches; eager): {(time.perf_counter() - t) * 200:.2f} ms\n"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2b")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--screen", default="1280x800")
    ap.add_argument("--history", default="window,blocks", help="history forms to run, comma-separated")
    ap.add_argument(
        "--tokenizer",
        choices=["qwen", "bytes"],
        default="qwen",
        help="Qwen's real BPE, or one token per byte",
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the steps, trace N more steps of the last form with torch.profiler: the kernels by GPU time",
    )
    ap.add_argument(
        "--free-tokens",
        type=int,
        default=16,
        help="the reply's free text is cut at this many tokens and the call started (max_new_tokens): random "
        "weights never end their thought, a real model's Action: line is ~13 tokens. 16 is what every loop "
        "figure so far was measured with (the grammar's budget forced the call there)",
    )
    ap.add_argument(
        "--reply",
        choices=["free", "script"],
        default="free",
        help="free: what the random weights say under the grammar (its free text cut at --free-tokens, "
        "~25 passes a step); script: every step's reply is step_latency.py's tool call, token for token "
        "(9 passes: the single step's reply, and the ~9 passes #20 counts a loop step at)",
    )
    ap.add_argument(
        "--decode-views",
        choices=["coarse", "fine"],
        default="coarse",
        help="the decode graphs' cache buckets above 2k positions: doubling, or 1k steps",
    )
    ap.add_argument(
        "--prefill-views",
        choices=["coarse", "fine"],
        default="coarse",
        help="the prefill graphs' cache buckets above 2k positions: doubling, or the decode's 1k steps",
    )
    ap.add_argument(
        "--wait-each-pass",
        action="store_true",
        help="wait for the GPU after every decode pass (how this benchmark measured before 2026-12-03)",
    )
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    import step_latency as sl

    from pixelpilot.agent.models.base import Reply
    from pixelpilot.agent.models.local import LocalModel
    from pixelpilot.agent.qwen.parse import parse_reply, reply_to_action
    from pixelpilot.agent.qwen.profile import QwenProfile
    from pixelpilot.agent.qwen.prompts import HistoryItem, loop_prompt
    from pixelpilot.tools.spaces import get_space

    sl.DEVICE = args.device
    w, h = (int(v) for v in args.screen.split("x"))
    import tempfile

    from tests.support.tiny_qwen import build_tokenizer, write_processor_files

    hw = hardware(args.device)
    folder = Path(tempfile.mkdtemp(prefix="pp-loop-"))  # the random model saved as a checkpoint
    model = sl.build(args.size)
    sizes = {
        "text_params": float(sum(p.numel() for p in model.model.language_model.parameters())),
        "vision_params": float(sum(p.numel() for p in model.model.visual.parameters())),
        "patches": (h // 16) * (w // 16),
    }
    sizes["text_bytes"] = 2 * sizes["text_params"]
    model.save_pretrained(folder)
    del model
    if args.device == "cuda":
        torch.cuda.empty_cache()
    if args.tokenizer == "qwen":
        from tests.support.qwen_tokenizer import build_qwen_tokenizer

        build_qwen_tokenizer(folder)
    else:
        build_tokenizer(folder, [])
    write_processor_files(folder)
    forms = [f.strip() for f in args.history.split(",") if f.strip()]
    t = time.perf_counter()
    lm = LocalModel(
        str(folder),
        device=args.device,
        allow_cpu=True,
        engine=True,  # on the CPU too (a smoke run of this script)
        profile=QwenProfile(history=forms[0], max_new_tokens=args.free_tokens),
    )
    warm_s = lm.warm_up((w, h), "computer_use")  # as a run that knows its screen and tool does
    load_s = time.perf_counter() - t
    model, eng = lm.model, lm.engine
    assert eng is not None, "the engine is off (no CUDA?)"
    # a wait after the prefill: its time and the decode's, apart (no wait between decode passes: the
    # host prepares the next pass while the GPU runs one, as in a user's loop)
    eng.split_prefill = True
    eng.profiling = args.wait_each_pass
    eng.coarse_prefill_views = args.prefill_views == "coarse"
    eng.coarse_decode_views = args.decode_views == "coarse"
    space = get_space("computer_use")
    goal = "Open the settings page, turn on dark mode and save"
    script = None
    if args.reply == "script":
        script = lm.processor.tokenizer.encode(sl.CALL, add_special_tokens=False) + [sl.IM_END]

    def generate(prompt: object) -> object:
        """One step's reply: the model's (``--reply free``) or the script's, through the same engine
        path (grammar, jump-forward; the forced tokens only replace the argmax)."""
        if script is None:
            return lm.generate(prompt)
        out = eng.generate(
            prompt.messages,
            tools=prompt.tools,
            size=dict(lm.profile.image_size),
            max_new_tokens=lm.profile.max_new_tokens,
            grammar=lm._grammar(prompt),
            forced=script,
        )
        return Reply(
            text=out.text,
            tokens_in=out.tokens_in,
            tokens_out=len(out.tokens),
            timings=out.timings,
            extra={"engine": {"reused_tokens": out.reused, "passes": out.forward_passes}},
        )

    results: dict[str, dict] = {}
    for f, form in enumerate(forms):
        lm.profile = QwenProfile(history=form, max_new_tokens=args.free_tokens)
        if f:  # the last form's logits check emptied the cache: a new run warms up, as the first did
            lm.warm_up((w, h), "computer_use")
        history: list = []
        rows = []
        for k in range(args.steps):
            img = screen(1000 * f + k, (w, h))  # new pictures for each form: no features kept across forms
            prompt = loop_prompt(space, goal, history, img, lm.profile)
            captured, runs, kept = len(eng.captures), eng.stats["vision_runs"], eng.stats["vision_kept"]
            masked = eng.stats["mask_ms"]
            t = time.perf_counter()
            reply = generate(prompt)
            if args.device == "cuda":
                torch.cuda.synchronize()
            ms = (time.perf_counter() - t) * 1000
            action, _ = reply_to_action(parse_reply(reply.text), space, (w, h), divisor=space.grid)
            row = {
                "step": k + 1,
                "images": len(prompt.images),
                "tokens_in": reply.tokens_in,
                "reused": reply.extra["engine"]["reused_tokens"],
                "tokens_out": reply.tokens_out,
                "passes": reply.extra["engine"]["passes"],
                "step_ms": round(ms, 1),
                "host_before_gpu_ms": round(reply.timings["preprocess"], 2),
                "prefill_ms": round(reply.timings["prefill"], 1),
                "decode_ms": round(reply.timings["decode"], 1),
                "grammar_mask_ms": round(eng.stats["mask_ms"] - masked, 1),
                "graphs_captured": len(eng.captures) - captured,
                "vision_runs": eng.stats["vision_runs"] - runs,
                "vision_kept": eng.stats["vision_kept"] - kept,
                "action": action.action,
            }
            row["limit_ms"] = round(limit_ms(row, sizes, hw), 2)
            rows.append(row)
            print(form, json.dumps(row), flush=True)
            history.append(HistoryItem(img, reply.text, f"did {action.action}"))
        if args.profile and f == len(forms) - 1:
            from torch.profiler import ProfilerActivity, profile

            eng.split_prefill = False  # no wait after the prefill: the trace shows the loop as it runs
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for k in range(args.profile):
                    img = screen(1000 * f + args.steps + k, (w, h))
                    prompt = loop_prompt(space, goal, history, img, lm.profile)
                    reply = generate(prompt)
                    torch.cuda.synchronize()
                    action, _ = reply_to_action(parse_reply(reply.text), space, (w, h), divisor=space.grid)
                    history.append(HistoryItem(img, reply.text, f"did {action.action}"))
                    print(
                        "profiled",
                        json.dumps(
                            {"passes": reply.extra["engine"]["passes"], "tokens_out": reply.tokens_out}
                        ),
                    )
            table = prof.key_averages().table(
                sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=90
            )
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"engine_loop_profile_{args.size}_{form}.txt").write_text(table)
            print(table, flush=True)
            eng.split_prefill = True
        replay_ms = None  # the last step's decode graph replayed back to back: a pass's GPU time alone
        graph = eng._graphs.get(("decode", 1, eng._view(len(eng._held), coarse=eng.coarse_decode_views)))
        if args.device == "cuda" and graph is not None and graph.get("graph") is not None:
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(50):
                graph["graph"].replay()
            torch.cuda.synchronize()
            replay_ms = round((time.perf_counter() - t) * 1000 / 50, 3)
        prep = eng.inputs.prepare(prompt.messages, prompt.tools, dict(lm.profile.image_size))
        if args.profile and f == len(forms) - 1 and args.device == "cuda":
            passes = pass_kernels(eng, prep)
            (args.out / f"engine_loop_passes_{args.size}_{form}.txt").write_text(passes)
            print(passes, flush=True)
        cos, same, _ = sl.prefill_vs_forward(eng, model, prep, lm.inputs(prompt), fresh=True)
        eng._held = []

        def around(n: int, rows: list = rows) -> float | None:
            """Median step time over the 5 steps ending at step n (folds and captures included)."""
            window = [r["step_ms"] for r in rows if n - 4 <= r["step"] <= n]
            return round(statistics.median(window), 1) if window else None

        def limit_around(n: int, rows: list = rows) -> float | None:
            window = [r["limit_ms"] for r in rows if n - 4 <= r["step"] <= n]
            return round(statistics.median(window), 2) if window else None

        at = [n for n in (1, 5, 20, 50) if n <= args.steps]
        results[form] = {
            "step_ms": {n: rows[n - 1]["step_ms"] for n in at},
            "step_ms_median_of_5_ending_at": {n: around(n) for n in at if n >= 5},
            "limit_ms_median_of_5_ending_at": {n: limit_around(n) for n in at if n >= 5},
            "limit_ms_step_1": rows[0]["limit_ms"],
            "decode_pass_gpu_ms": replay_ms,
            "last_prompt_logits_cos": round(cos, 5),
            "last_prompt_top1_same": same,
            "steps": rows,
        }
    summary = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "size": args.size,
        "screen": args.screen,
        "tokenizer": args.tokenizer,
        "attention": os.environ.get("PIXELPILOT_ENGINE_ATTENTION", "grouped"),
        "packed_projections": eng.packed,
        "triton_attention": eng.kernels,
        "triton_attention_error": eng.kernels_error,
        "prefill_views": args.prefill_views,
        "decode_views": args.decode_views,
        "free_tokens": args.free_tokens,
        "reply": args.reply,
        "wait_each_pass": args.wait_each_pass,
        "command": "python benchmarks/engine_loop.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "hardware": {
            "bf16_matmul_tflops": round(hw["matmul_flops"] / 1e12, 1),
            "copy_gb_s": round(hw["copy_bytes"] / 1e9, 1),
        },
        "model_sizes": sizes,
        "prefill_graphs": eng.prefill_graphs,
        "vision_graphs": eng.vision.graphs_on,
        "graph_error": eng.graph_error,
        "load_and_warm_up_s": round(load_s, 2),
        "engine_warm_up_s": round(eng.warmup_s, 2),
        "warm_up_for_screen_s": round(warm_s, 2),
    }
    print(json.dumps(summary), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "" if summary["attention"] == "grouped" else f"_{summary['attention']}"
    tag += "" if eng.kernels else "_no_triton"
    tag += "_script" if script is not None else ""
    (args.out / f"engine_loop_{args.size}_{args.tokenizer}{tag}.json").write_text(
        json.dumps({"summary": summary, "forms": results}, indent=1)
    )
    print(f"\n{args.size}, {args.tokenizer} tokenizer, {summary['device']}")
    print("| history | step 1 ms | step 5 | step 20 | step 50 | limit at step 20 | logits cos |")
    print("|---|---|---|---|---|---|---|")
    for form, r in results.items():
        med = r["step_ms_median_of_5_ending_at"]
        print(
            f"| {form} | {r['step_ms'].get(1)} | {med.get(5)} | {med.get(20)} | {med.get(50)} | "
            f"{r['limit_ms_median_of_5_ending_at'].get(20)} | {r['last_prompt_logits_cos']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
