"""One agent step of Qwen3-VL on one GPU: vision encoder + prefill of a 1280×800 screenshot (1000 image
tokens) with ~600 text tokens, then a 48-token tool call; batch 1, bf16, sdpa, random weights of the
real 2B/4B/8B architecture (speed does not depend on weight values when token counts are fixed).

Paths, in ONE run on the same inputs: plain ``generate`` (dynamic cache) and
``generate(cache_implementation="static")``. Both decode greedily for exactly 48 tokens, and the run
checks they produce the same tokens, so the times compare like for like. The fast engine (issue 7)
is to be added here as a third path.

Needs only torch and transformers (runs on the accelerator machine as it is):

    python benchmarks/step_latency.py --sizes 2b 4b --reps 10 --out $OUT
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
DEVICE = "cuda"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 - BASE[0] if DEVICE == "cuda" else 0.0


BASE = [0.0]


def reset_peak() -> None:
    """Peaks are reported as the model's weights plus what the path itself allocated beyond what was
    already held (compiled graphs of an earlier path stay allocated)."""
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
        BASE[0] = torch.cuda.memory_allocated() / 2**30 - WEIGHTS[0]


WEIGHTS = [0.0]
FUSE: list[object] = [None]


IMAGE_PAD, VISION_START, VISION_END, IM_START, IM_END = 151655, 151652, 151653, 151644, 151645


def build(size: str) -> torch.nn.Module:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if size == "tiny":  # a CPU smoke run of this script: the tests' tiny architecture
        sys.path.append(str(HERE.parent))
        from tests.support.tiny_qwen import config

        cfg = config(tied=True)
    else:
        cfg = Qwen3VLConfig.from_dict(json.loads((HERE / "configs" / f"qwen3-vl-{size}.json").read_text()))
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = Qwen3VLForConditionalGeneration._from_config(
            cfg, dtype=torch.bfloat16 if DEVICE == "cuda" else torch.float32
        )
    return model.eval()


def inputs(
    model: torch.nn.Module, *, screen: tuple[int, int] = (1280, 800), text_tokens: int = 600
) -> dict[str, torch.Tensor]:
    """Token ids laid out as the chat template lays out a computer_use step (system text, the image, the
    instruction, the assistant header), random text ids, a random image; exact token counts."""
    w, h = screen
    gh, gw = round(h / 32) * 2, round(w / 32) * 2  # smart_resize: sides to multiples of 32 (1080 → 1088)
    n_img = gh * gw // 4
    g = torch.Generator().manual_seed(1)
    head = torch.randint(1000, 150000, (text_tokens - 30,), generator=g)
    tail = torch.randint(1000, 150000, (24,), generator=g)
    ids = torch.cat(
        [
            torch.tensor([IM_START]),
            head,
            torch.tensor([VISION_START]),
            torch.full((n_img,), IMAGE_PAD),
            torch.tensor([VISION_END]),
            tail,
            torch.tensor([IM_END, IM_START, 77091, 198]),
        ]
    )[None].to(DEVICE)
    out = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(gh * gw, 3 * 2 * 16 * 16, generator=g).to(
            DEVICE, next(model.parameters()).dtype
        ),
        "image_grid_thw": torch.tensor([[1, gh, gw]], device=DEVICE),
    }
    if "mm_token_type_ids" in inspect.signature(model.forward).parameters:
        out["mm_token_type_ids"] = (ids == IMAGE_PAD).long()
    return out


class ForceTokens:
    """A logits processor that makes every path emit the same tokens (random weights would wander and
    bf16 rounding flips their near-ties differently per path): decoding work is unchanged."""

    def __init__(self, prompt_len: int, tokens: list[int]) -> None:
        self.prompt_len, self.tokens = prompt_len, tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        i = min(input_ids.shape[1] - self.prompt_len, len(self.tokens) - 1)
        forced = torch.full_like(scores, float("-inf"))
        forced[:, self.tokens[i]] = 0.0
        return forced


def timed(fn, reps: int) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    times, result = [], None
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        result = fn()
        sync()
        times.append((time.perf_counter() - t) * 1000)
    return times, result


CALL = '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [512, 384]}}\n</tool_call>'
THOUGHT = "Action: Click the Sign in button to log in as alice.\n"


def offline_processor(device: str):  # type: ignore[no-untyped-def]
    """The offline Qwen3-VL processor of the tests (real special-token ids, byte-level text: one token
    per character of ordinary text, so a tool call is ~90 tokens where Qwen's tokenizer makes ~40)."""
    import tempfile

    sys.path.append(str(HERE.parent))
    from pixelpilot.agent.models.local import load_processor
    from tests.support.tiny_qwen import build_tokenizer, write_processor_files

    d = Path(tempfile.mkdtemp(prefix="pp-proc-"))
    build_tokenizer(d, [])
    write_processor_files(d)
    return load_processor(str(d))


def prefill_vs_forward(engine, model, prep, model_inputs, *, fresh: bool) -> tuple[float, bool, int]:  # type: ignore[no-untyped-def]
    """The engine's last prefill logits for ``prep`` (from an empty cache when ``fresh``) against
    the model's own forward on ``model_inputs``: cosine similarity, same top token, tokens reused."""
    with torch.inference_mode():
        if fresh:
            engine._held = []
        logits, reused, _ = engine._prefill(prep)
        ref = model(**model_inputs).logits[0, -1].float()
        got = logits[-1].float()
        cos = float(torch.nn.functional.cosine_similarity(got, ref, dim=0))
        return cos, int(got.argmax()) == int(ref.argmax()), reused


def agreement(engine, model, x, ids, prep) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The engine's prefill logits against the model's own forward on the same ids and picture: the
    forced tokens make every path print the same text, so this is what says the engine computes the
    model (graphed vision tower and prefill included), once from an empty cache and once reusing the
    system prefix."""
    out: dict[str, object] = {}
    for label, k, fresh in (("cold", 0, True), ("reuse", 1, False)):
        p = prep(k)
        _, _, _, h, w = p["grids"][0]
        pv, _ = engine.inputs.pixels(p["images"][0], h, w)
        cos, same, reused = prefill_vs_forward(engine, model, p, {**x, "pixel_values": pv}, fresh=fresh)
        out[f"logits_cos_{label}"] = round(cos, 5)
        out[f"top1_same_{label}"] = same
        out[f"reused_{label}"] = reused
    engine._held = []
    return out


def prompt_cpu_ms(engine, picture) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Host time the step spends before the GPU: the real computer_use prompt rendered by the chat
    template, tokenized, the image's size and digest, the 3-axis positions. The picture arrives as
    a driver gives it: JPEG bytes in a Screen, decoded (untimed: every backend decodes it)."""
    import io

    from pixelpilot.agent.qwen.prompts import act_prompt
    from pixelpilot.drivers.base import Screen
    from pixelpilot.tools.spaces import get_space

    size = {"longest_edge": 16777216, "shortest_edge": 65536}
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=85)
    data = buf.getvalue()
    times = []
    for _ in range(23):
        # a new screen each time, as a new screenshot is: its digest is not remembered
        image = Screen(data, picture.width, picture.height, format="jpeg").image
        prompt = act_prompt(get_space("computer_use"), "Click the Sign in button to log in as alice.", image)
        t = time.perf_counter()
        p = engine.inputs.prepare(prompt.messages, prompt.tools, size)
        engine.inputs.rope_positions(p["ids"], p["grids"])
        times.append((time.perf_counter() - t) * 1000)
    return {"prompt_cpu_ms": round(statistics.median(times[3:]), 2), "prompt_cpu_tokens": len(p["ids"])}


def _run_size(
    size: str,
    reps: int,
    screen: tuple[int, int],
    thought: bool,
    paths: list[str],
    model: torch.nn.Module,
    processor,  # type: ignore[no-untyped-def]
) -> list[dict[str, object]]:
    from PIL import Image
    from transformers import LogitsProcessorList

    from pixelpilot.agent.models.engine import Engine
    from pixelpilot.agent.qwen.constrain import tool_call_grammar
    from pixelpilot.tools.spaces import get_space

    x = inputs(model, screen=screen)
    ids = x["input_ids"][0].tolist()
    n_in = len(ids)
    tok = processor.tokenizer
    script = tok.encode((THOUGHT if thought else "") + CALL, add_special_tokens=False) + [IM_END]
    n_out = len(script)
    w, h = screen
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(reps + 3)]
    engine = Engine(model, processor, max_len=4096, fuse=FUSE[0])
    rh, rw = engine.inputs.image_size(w, h, {"longest_edge": 16777216, "shortest_edge": 65536})
    pv, _ = engine.inputs.pixels(pictures[0], rh, rw)
    x["pixel_values"] = pv
    common = {
        "do_sample": False,
        "pad_token_id": 151643,
        "logits_processor": LogitsProcessorList([ForceTokens(n_in, script)]),
    }
    rows = []
    label = f"{'thought + ' if thought else ''}tool call"

    def row(
        path: str,
        pre50: float,
        step: list[float],
        per_token: float,
        warm: float,
        out_tokens: int,
        same: bool,
        **extra: object,
    ) -> None:
        rows.append(
            {
                "size": size,
                "screen": f"{w}x{h}",
                "output": label,
                "path": path,
                "tokens_in": n_in,
                "tokens_out": out_tokens,
                "prefill_ms": round(pre50, 1),
                "ms_per_token": round(per_token, 2),
                "step_ms_p50": round(statistics.median(step), 1),
                "step_ms_p90": round(sorted(step)[int(0.9 * (len(step) - 1))], 1),
                "warmup_s": round(warm, 1),
                "peak_gib": round(peak_gib(), 2),
                "same_text": same,
                **extra,
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    for path, extra in (
        ("generate (dynamic cache)", {}),
        ("generate (static cache, compiled)", {"cache_implementation": "static"}),
    ):
        if ("plain" if not extra else "static") not in paths:
            continue
        reset_peak()
        sync()
        t0 = time.perf_counter()
        with torch.inference_mode():
            for _ in range(2):
                model.generate(**x, max_new_tokens=n_out, min_new_tokens=n_out, **common, **extra)
        sync()
        warm = time.perf_counter() - t0
        with torch.inference_mode():
            pre, _ = timed(
                lambda extra=extra: model.generate(
                    **x, max_new_tokens=1, min_new_tokens=1, **common, **extra
                ),
                reps,
            )
            step, out = timed(
                lambda extra=extra: model.generate(
                    **x, max_new_tokens=n_out, min_new_tokens=n_out, **common, **extra
                ),
                reps,
            )
        tokens = out[0, n_in:].tolist()  # type: ignore[index]
        p50, pre50 = statistics.median(step), statistics.median(pre)
        row(path, pre50, step, (p50 - pre50) / max(1, n_out - 1), warm, len(tokens), tokens == script)

    if "engine-unfused" in paths:
        paths = [*paths, "engine"]
        engine.fuse = False
    if "engine" in paths:
        grammar = tool_call_grammar(get_space("computer_use"))
        image_at = ids.index(IMAGE_PAD)
        n_img = ids.count(IMAGE_PAD)

        made = itertools.count()

        def prep(k: int) -> dict[str, object]:
            # a new screenshot every step: a name never used before (the engine keeps the vision
            # features of pictures it has seen, by this name)
            name = f"picture-{k}-{next(made)}"
            owner = [None] * n_in
            for i in range(image_at, image_at + n_img):
                owner[i] = name
            return {
                "ids": ids,
                "owner": owner,
                "images": [pictures[k]],
                "grids": [(1, rh // 16, rw // 16, rh, rw)],
                "digests": [name],
            }

        reset_peak()
        sync()
        t0 = time.perf_counter()
        engine.warm_up(n_in)
        for k in range(2):
            engine.generate_prepared(prep(k), max_new_tokens=n_out, grammar=grammar, forced=script)
        sync()
        warm = time.perf_counter() - t0
        step, passes = [], []
        engine.reset_stats()
        for k in range(reps):
            sync()
            t = time.perf_counter()
            o = engine.generate_prepared(prep(k + 2), max_new_tokens=n_out, grammar=grammar, forced=script)
            sync()
            step.append((time.perf_counter() - t) * 1000)
            passes.append(o.forward_passes)
        stats = dict(engine.stats)
        # three more steps that wait for the GPU after the prefill and after each pass: where the
        # time goes (the timed steps above do not wait, so their host timings say nothing of it)
        engine.profiling = True
        pre, per_pass = [], []
        for k in range(3):
            engine.reset_stats()
            po = engine.generate_prepared(prep(k), max_new_tokens=n_out, grammar=grammar, forced=script)
            pre.append(po.timings["prefill"])
            per_pass.append(engine.stats["pass_ms"] / max(1, po.forward_passes - 1))
        engine.profiling = False
        profile = {k: round(v, 1) for k, v in engine.stats.items()}
        check = agreement(engine, model, x, ids, prep)
        cpu = prompt_cpu_ms(engine, pictures[0])
        text = tok.decode(o.tokens, skip_special_tokens=True)
        want = tok.decode(script, skip_special_tokens=True)
        row(
            "engine" + ("" if engine.fuse else " (unfused)"),
            statistics.median(pre),
            step,
            statistics.median(per_pass),
            warm,
            len(o.tokens),
            text == want,
            reused_prompt_tokens=o.reused,
            forward_passes=int(statistics.median(passes)),
            jumped_tokens=o.jumped,
            cuda_graphs=engine.graphs_on,
            grammar_ms_per_step=round(stats["mask_ms"] / reps, 2),
            one_step_profile=profile,
            graph_error=engine.graph_error,
            fused=engine.fuse,
            triton_attention=engine.kernels,
            prefill_graphs=engine.prefill_graphs,
            vision_graphs=engine.vision.graphs_on,
            captures=engine.captures[:12],
            capture_s_total=round(sum(t for _, t in engine.captures), 2),
            **check,
            **cpu,
        )
    torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["2b", "4b"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--screens", nargs="+", default=["1280x800"], help="WxH (1280x800: 1000 image tokens)")
    ap.add_argument("--paths", nargs="+", default=["plain", "static", "engine"])
    ap.add_argument("--thoughts", action="store_true", help="also the reply with a thought line first")
    ap.add_argument("--thought-paths", nargs="+", default=["plain", "engine"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--fuse", default=None, help="engine's fused kernels: liger, inductor, 0 (default: best)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    import transformers

    DEVICE = args.device
    FUSE[0] = args.fuse
    sys.path.append(str(HERE.parent))
    device = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu"
    screens = [tuple(int(v) for v in sc.lower().split("x")) for sc in args.screens]
    processor = offline_processor(DEVICE)
    rows: list[dict[str, object]] = []

    def run_size(*a: object) -> list[dict[str, object]]:  # one failing combination does not lose the rest
        try:
            return _run_size(*a)  # type: ignore[arg-type]
        except Exception:
            import traceback

            traceback.print_exc()
            return []

    for size in args.sizes:
        model = build(size)
        WEIGHTS[0] = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
        for sc in screens:
            rows += run_size(size, args.reps, sc, False, args.paths, model, processor)  # type: ignore[arg-type]
            if args.thoughts:
                rows += run_size(size, args.reps, sc, True, args.thought_paths, model, processor)  # type: ignore[arg-type]
        del model
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    meta = {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "command": "python benchmarks/step_latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_latency.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    head = "| size | screen | output | path | tokens in/out | prefill ms | ms/token (engine: per pass) | step ms p50 | p90 | warm-up s | peak GiB | same text |"
    print(
        f"\n{device} · torch {torch.__version__} · transformers {transformers.__version__}\n\n{head}\n|"
        + "---|" * 12
    )
    for r in rows:
        print(
            f"| {r['size']} | {r['screen']} | {r['output']} | {r['path']} | {r['tokens_in']}/{r['tokens_out']} | {r['prefill_ms']} | {r['ms_per_token']} | "
            f"{r['step_ms_p50']} | {r['step_ms_p90']} | {r['warmup_s']} | {r['peak_gib']} | {r['same_text']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
