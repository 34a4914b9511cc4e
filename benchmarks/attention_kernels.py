"""The engine's attention alone, on the GPU: the Triton kernels over the filled part of the cache
(``agent.models.kernels``) against the bucket-and-mask path they replace (``grouped_sdpa`` over a
doubling bucket), for Qwen3-VL's 2B and 4B head layouts. Each form runs as the engine runs it: 28 calls
(one per layer, each over its own cache) captured in one CUDA graph, replayed; the time is per call. Also the largest difference
from sdpa over the visible part.

    python benchmarks/attention_kernels.py --out $OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from _timing import graph_ms

HERE = Path(__file__).resolve().parent

LAYOUTS = {"2b": (16, 8), "4b": (32, 8)}  # query heads, key/value heads (head dim 128)


LAYERS = 28


def timed(fn) -> float:
    """Microseconds per call of ``fn(layer)`` replayed from a graph of one call per layer, each layer
    reading its own cache (as a decode pass does: nothing is left in L2 from the layer before)."""

    def one_pass() -> None:
        for i in range(LAYERS):
            fn(i)

    return graph_ms(one_pass, reps=10) * 1000 / LAYERS


def bucket(end: int) -> int:
    from pixelpilot.agent.models.engine_cache import view_bucket

    return view_bucket(end, 1 << 20, coarse=True)


CACHES: dict[tuple[int, int], tuple[list, list]] = {}


def caches(hk: int, length: int) -> tuple[list, list]:
    if (hk, length) not in CACHES:
        CACHES.clear()
        gen = torch.Generator(device="cuda").manual_seed(0)
        shape = (1, hk, length, 128)
        CACHES[hk, length] = (
            [torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(LAYERS)],
            [torch.randn(shape, device="cuda", dtype=torch.bfloat16, generator=gen) for _ in range(LAYERS)],
        )
    return CACHES[hk, length]


def case(size: str, q: int, start: int, length: int, *, compare: bool = True) -> dict[str, object]:
    from transformers.integrations.sdpa_attention import repeat_kv

    from pixelpilot.agent.models.attention import grouped_sdpa
    from pixelpilot.agent.models.kernels import attend

    h, hk = LAYOUTS[size]
    d, dev, dt = 128, "cuda", torch.bfloat16
    torch.manual_seed(0)
    query = torch.randn(1, q, h, d, device=dev, dtype=dt).transpose(1, 2)
    keys, values = caches(hk, length)
    key, value = keys[0], values[0]
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
    row: dict[str, object] = {
        "size": size,
        "query_tokens": q,
        "held": start,
        "bucket": view,
        "triton_us": round(timed(lambda i: attend(query, keys[i], values[i], st, scale)), 1),
        "triton_max_diff": float((got.float() - want.float()).abs().max()),
        "bucket_max_diff": float((old.float() - want.float()).abs().max()),
        "cache_mb_read_by_triton": round(2 * hk * end * d * 2 / 1e6, 1),
    }
    if compare:
        row["bucket_sdpa_us"] = round(
            timed(
                lambda i: grouped_sdpa(
                    None, query, keys[i][:, :, :view], values[i][:, :, :view], mask, scaling=scale
                )
            ),
            1,
        )
    row["triton_gb_s"] = round(
        float(row["cache_mb_read_by_triton"]) / float(row["triton_us"]) * 1e3
    )  # MB/µs · 1e3
    return row


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
    names = ("PREFILL_ROWS", "PREFILL_BLOCK_N", "PREFILL_WARPS", "PREFILL_STAGES")
    names += ("SPLITS_PER_SM", "SPLIT_BLOCK_N", "SPLIT_WARPS", "SPLIT_STAGES", "COMBINE_WARPS")
    base = {k: getattr(kernels, k) for k in names}
    tries = (
        [
            dict(PREFILL_ROWS=r, PREFILL_BLOCK_N=n, PREFILL_WARPS=w, PREFILL_STAGES=st)
            for r, n, w, st in (
                (64, 64, 4, 3),
                (64, 32, 4, 3),
                (64, 64, 4, 4),
                (128, 64, 8, 3),
                (128, 128, 8, 3),
                (128, 64, 4, 3),
                (64, 128, 4, 3),
                (64, 64, 4, 2),
                (32, 64, 4, 3),
                (128, 64, 8, 2),
            )
        ]
        + [
            dict(SPLITS_PER_SM=sp, SPLIT_BLOCK_N=n, SPLIT_WARPS=w, SPLIT_STAGES=st)
            for sp in (1, 2, 4)
            for n in (32, 64)
            for w in (2, 4)
            for st in (2, 3)
        ]
        + [dict(COMBINE_WARPS=w) for w in (1, 2, 4, 8)]
    )
    for t in tries:
        for k, v in t.items():
            setattr(kernels, k, v)
        q = 1152 if any(k.startswith("PREFILL") for k in t) else 1
        try:
            for held in (8400,) if q > 1 else (1500, 9500):
                row = case("2b", q, held, length, compare=False)
                sweep.append(
                    {**t, "query_tokens": q, "held": held, "triton_us": row["triton_us"],
                     "max_diff": row["triton_max_diff"]}
                )  # fmt: skip
                print(json.dumps(sweep[-1]), flush=True)
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
