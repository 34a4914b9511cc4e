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
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
IMAGE_PAD, VISION_START, VISION_END, IM_START, IM_END = 151655, 151652, 151653, 151644, 151645


def build(size: str) -> torch.nn.Module:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    cfg = Qwen3VLConfig.from_dict(json.loads((HERE / "configs" / f"qwen3-vl-{size}.json").read_text()))
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
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
    )[None].cuda()
    out = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(gh * gw, 3 * 2 * 16 * 16, generator=g).to("cuda", torch.bfloat16),
        "image_grid_thw": torch.tensor([[1, gh, gw]], device="cuda"),
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
        torch.cuda.synchronize()
        t = time.perf_counter()
        result = fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return times, result


def run_size(size: str, reps: int, new_tokens: int, screen: tuple[int, int]) -> list[dict[str, object]]:
    from transformers import LogitsProcessorList

    model = build(size)
    x = inputs(model, screen=screen)
    n_in = int(x["input_ids"].shape[1])
    script = torch.randint(1000, 150000, (new_tokens,), generator=torch.Generator().manual_seed(2)).tolist()
    common = {
        "do_sample": False,
        "pad_token_id": 151643,
        "logits_processor": LogitsProcessorList([ForceTokens(n_in, script)]),
    }
    rows = []
    reference = None
    for path, extra in (
        ("generate (dynamic cache)", {}),
        ("generate (static cache, compiled)", {"cache_implementation": "static"}),
    ):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(**x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **common, **extra)
            model.generate(**x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **common, **extra)
        torch.cuda.synchronize()
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
                    **x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **common, **extra
                ),
                reps,
            )
        tokens = out[0, n_in:].tolist()  # type: ignore[index]
        if reference is None:
            reference = tokens
        p50, pre50 = statistics.median(step), statistics.median(pre)
        rows.append(
            {
                "size": size,
                "screen": f"{screen[0]}x{screen[1]}",
                "path": path,
                "tokens_in": n_in,
                "tokens_out": len(tokens),
                "prefill_ms": round(pre50, 1),
                "ms_per_token": round((p50 - pre50) / max(1, len(tokens) - 1), 2),
                "step_ms_p50": round(p50, 1),
                "step_ms_p90": round(sorted(step)[int(0.9 * (len(step) - 1))], 1),
                "warmup_s": round(warm, 1),
                "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "same_tokens_as_first_path": tokens == reference == script,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["2b", "4b"])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument(
        "--screens", nargs="+", default=["1280x800"], help="WxH screenshots (1280x800: 1000 image tokens)"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    import transformers

    device = torch.cuda.get_device_name(0)
    screens = [tuple(int(v) for v in sc.lower().split("x")) for sc in args.screens]
    rows = [r for s in args.sizes for sc in screens for r in run_size(s, args.reps, args.new_tokens, sc)]  # type: ignore[arg-type]
    meta = {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "command": "python benchmarks/step_latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "step_latency.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    head = "| size | screen | path | tokens in/out | prefill ms | ms/token | step ms p50 | p90 | warm-up s | peak GiB | same tokens |"
    print(
        f"\n{device} · torch {torch.__version__} · transformers {transformers.__version__}\n\n{head}\n|"
        + "---|" * 11
    )
    for r in rows:
        print(
            f"| {r['size']} | {r['screen']} | {r['path']} | {r['tokens_in']}/{r['tokens_out']} | {r['prefill_ms']} | {r['ms_per_token']} | "
            f"{r['step_ms_p50']} | {r['step_ms_p90']} | {r['warmup_s']} | {r['peak_gib']} | {r['same_tokens_as_first_path']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
