"""The engine's attention alone, on the GPU: the Triton kernels over the filled part of the cache
(``agent.models.kernels``) against the bucket-and-mask path they replace (``grouped_sdpa`` over a
doubling bucket), for Qwen3-VL's 2B and 4B head layouts. Each form runs as the engine runs it: 28 calls
(one per layer) captured in one CUDA graph, replayed; the time is per call. Also the largest difference
from sdpa over the visible part.

    python benchmarks/attention_kernels.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

LAYOUTS = {"2b": (16, 8), "4b": (32, 8)}  # query heads, key/value heads (head dim 128)


def timed(fn, reps: int = 20, layers: int = 28) -> float:
    """Microseconds per call of ``fn`` replayed from a graph of ``layers`` calls."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(layers):
            fn()
    g.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        g.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1000 / reps / layers


def bucket(end: int) -> int:
    from pixelpilot.agent.models.engine_cache import view_bucket

    return view_bucket(end, 1 << 20, coarse=True)


def case(size: str, q: int, start: int, length: int) -> dict[str, object]:
    from transformers.integrations.sdpa_attention import repeat_kv

    from pixelpilot.agent.models.attention import grouped_sdpa
    from pixelpilot.agent.models.kernels import attend

    h, hk = LAYOUTS[size]
    d, dev, dt = 128, "cuda", torch.bfloat16
    torch.manual_seed(0)
    query = torch.randn(1, q, h, d, device=dev, dtype=dt).transpose(1, 2)
    key = torch.randn(1, hk, length, d, device=dev, dtype=dt)
    value = torch.randn(1, hk, length, d, device=dev, dtype=dt)
    st = torch.tensor(start, device=dev)
    view = min(length, bucket(start + q))
    where = start + torch.arange(q, device=dev)
    mask = (torch.arange(view, device=dev)[None, :] <= where[:, None])[None, None]
    scale = d**-0.5
    end = start + q
    vis = (torch.arange(end, device=dev)[None, :] <= where[:, None])[None, None]
    want = torch.nn.functional.scaled_dot_product_attention(
        query,
        repeat_kv(key[:, :, :end], h // hk),
        repeat_kv(value[:, :, :end], h // hk),
        attn_mask=vis,
        scale=scale,
    ).transpose(1, 2)
    got = attend(query, key, value, st, scale)
    old = grouped_sdpa(None, query, key[:, :, :view], value[:, :, :view], mask, scaling=scale)[0]
    return {
        "size": size,
        "query_tokens": q,
        "held": start,
        "bucket": view,
        "triton_us": round(timed(lambda: attend(query, key, value, st, scale)), 1),
        "bucket_sdpa_us": round(
            timed(
                lambda: grouped_sdpa(None, query, key[:, :, :view], value[:, :, :view], mask, scaling=scale)
            ),
            1,
        ),
        "triton_max_diff": float((got.float() - want.float()).abs().max()),
        "bucket_max_diff": float((old.float() - want.float()).abs().max()),
        "cache_mb_read_by_triton": round(2 * hk * end * d * 2 / 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    length = 32768
    rows = []
    for size in ("2b", "4b"):
        for q, start in (
            (1, 1500),
            (1, 5000),
            (1, 9500),
            (1, 17000),
            (8, 9500),
            (64, 9500),
            (128, 8400),
            (1152, 8400),
        ):
            rows.append(case(size, q, start, length))
            print(json.dumps(rows[-1]), flush=True)
    from pixelpilot.agent.models import kernels

    sweep = []  # the kernels' tile settings: the prefill form on a prefill, the split form on a decode pass
    base = {
        k: getattr(kernels, k)
        for k in ("PREFILL_ROWS", "BLOCK_N", "PREFILL_WARPS", "PREFILL_STAGES", "SPLIT", "SPLIT_WARPS")
    }
    tries = [
        dict(PREFILL_ROWS=r, BLOCK_N=n, PREFILL_WARPS=w, PREFILL_STAGES=st)
        for r in (64, 128)
        for n in (32, 64, 128)
        for w in (4, 8)
        for st in (2, 3)
    ] + [dict(SPLIT=sp, SPLIT_WARPS=w, BLOCK_N=n) for sp in (128, 256, 512) for w in (2, 4) for n in (32, 64)]
    for t in tries:
        for k, v in t.items():
            setattr(kernels, k, v)
        q = 1152 if "PREFILL_ROWS" in t else 1
        try:
            row = case("2b", q, 8400 if q > 1 else 9500, length)
            sweep.append(
                {**t, "query_tokens": q, "triton_us": row["triton_us"], "max_diff": row["triton_max_diff"]}
            )
        except Exception as exc:  # a tile that does not fit the chip's shared memory
            sweep.append({**t, "query_tokens": q, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
        print(json.dumps(sweep[-1]), flush=True)
        for k, v in base.items():
            setattr(kernels, k, v)
    out = {
        "sweep": sweep,
        "device": torch.cuda.get_device_name(0),
        "cache_positions": length,
        "command": "python benchmarks/attention_kernels.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention_kernels.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
