"""Attention over the filled part of the engine's cache, in Triton: the graphs attend over the whole
buffer, and each pass reads only the positions its tokens may see.

Without it a captured pass attends over a fixed bucket of the cache with an explicit mask: a 9.5k-token
prompt in a 16k bucket reads 16k positions of keys and values a layer, and every new bucket captures
new graphs. Here the number of positions held comes from a tensor the graph reads (the pass's first
cache position), so one graph per chunk length serves every prompt length, and a row of the grouped
query (query heads sharing a key/value head, laid along the query axis) stops at its own position.

Two forms of one kernel:

* **split over the cache** (decode and short chunks: a few query rows): each program takes a slice of
  the cache, for every key/value head; a second kernel combines the slices by their log-sum-exp
  (flash-decoding). A decode pass reads each filled position's keys and values once, on every
  multiprocessor at once.
* **one program per block of query rows** (prefill): flash attention that stops at the block's last
  visible position.

Queries are read in transformers' layout (batch 1, heads, tokens, dim: any strides, the last one 1) and
the output is written in the layout its ``o_proj`` takes (tokens, heads, dim): no copy either side.
On CPU, ``TRITON_INTERPRET=1`` runs the same kernels in Triton's interpreter (the tests do).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

__all__ = ["attend", "available", "choose", "kernel_attention", "prepare", "self_test"]

ROWS = 16
"""Query rows per program in the split form (the least a Triton matrix product takes)."""
SPLIT = 512
"""Cache positions per program in the split form, for up to ``ROWS`` query rows (a decode pass)."""
WIDE_SPLIT = 1024
"""The same for chunks of more rows (jump-forward runs): fewer partial results to keep and combine."""
SPLIT_ROWS = 256
"""Query rows up to which the split form is used; above, the prefill form."""
SPLIT_BLOCK_N, SPLIT_WARPS, SPLIT_STAGES = 64, 2, 3
"""The split form's tile of cache positions, warps per program, software-pipeline stages."""
PREFILL_ROWS, PREFILL_BLOCK_N, PREFILL_WARPS, PREFILL_STAGES = 64, 64, 4, 3
"""The prefill form's query rows and cache positions per tile, warps, stages (measured on an H200:
``benchmarks/attention_kernels.py``)."""
COMBINE_CHUNK, COMBINE_WARPS = 64, 4
"""Slices the combining kernel reads at a time, and its warps."""
PREPARE_TOKENS = 16
"""Tokens a program of ``prepare`` takes (one in a decode pass)."""
LOG2E = 1.4426950408889634


@functools.cache
def available() -> bool:
    """Triton can be imported (the engine then uses these kernels on CUDA)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:
        return False
    return True


def choose(asked: bool | None, text_config: Any, dtype: Any, device: Any) -> tuple[bool, str | None]:
    """Whether the engine attends with these kernels, and why not when they were asked for but do not
    run here (``self_test``). ``asked`` None: on CUDA when Triton imports and
    ``PIXELPILOT_ENGINE_KERNELS`` is not 0. Only for grouped heads under the grouped attention."""
    import os

    heads, kv_heads = int(text_config.num_attention_heads), int(text_config.num_key_value_heads)
    dim = int(getattr(text_config, "head_dim", None) or text_config.hidden_size // heads)
    if asked is None:
        asked = (
            device.type == "cuda" and os.environ.get("PIXELPILOT_ENGINE_KERNELS", "1") != "0" and available()
        )
    grouped = heads != kv_heads and os.environ.get("PIXELPILOT_ENGINE_ATTENTION", "grouped") != "sdpa"
    if not (asked and grouped):
        return False, None
    failed = self_test(heads, kv_heads, dim, dtype, device)
    return failed is None, failed


def self_test(heads: int, kv_heads: int, dim: int, dtype: Any, device: Any) -> str | None:
    """Run each kernel once on a small cache of the model's head layout and dtype (Triton compiles them
    here, as the first pass would): None when they run and agree with sdpa, else what went wrong (a
    GPU or Triton build they do not compile for), so the engine can fall back instead of failing
    every step."""
    import torch

    try:
        gen = torch.Generator(device=device).manual_seed(0)
        length, q = 1024, 300
        key = torch.randn(1, kv_heads, length, dim, dtype=dtype, device=device, generator=gen)
        value = torch.randn(1, kv_heads, length, dim, dtype=dtype, device=device, generator=gen)
        qkv = torch.randn(1, q, (heads + 2 * kv_heads) * dim, dtype=dtype, device=device, generator=gen)
        ones = torch.ones(dim, dtype=dtype, device=device)
        cos = torch.ones(1, q, dim, dtype=dtype, device=device)
        start = torch.tensor(500, device=device)
        query = prepare(qkv, ones, ones, 1e-6, cos, torch.zeros_like(cos), key, value, start, heads, kv_heads)
        g, end = heads // kv_heads, 500 + q
        for rows in (query[:, :1], query):  # the split form (a decode pass) and the prefill form
            n = rows.shape[1]
            got = attend(rows.transpose(1, 2), key, value, start, dim**-0.5)
            where = 500 + torch.arange(n, device=device)
            mask = (torch.arange(end, device=device)[None, :] <= where[:, None])[None, None]
            want = torch.nn.functional.scaled_dot_product_attention(
                rows.transpose(1, 2),
                key[:, :, :end].repeat_interleave(g, dim=1),
                value[:, :, :end].repeat_interleave(g, dim=1),
                attn_mask=mask,
                scale=dim**-0.5,
            ).transpose(1, 2)
            err = float((got.float() - want.float()).abs().max())
            if not err < 0.05:
                return f"the kernels disagree with sdpa by {err:.3g}"
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None


def attend(query: Any, key: Any, value: Any, start: Any, scale: float) -> Any:
    """Causal attention of ``query`` (1, heads, q, d) over the cache ``key``/``value`` (1, kv heads,
    length, d) whose first ``start`` positions (a 0-d long tensor, read on the device) are held and
    whose next q positions hold the query's own tokens: token t sees positions 0 .. start + t.
    Returns (1, q, heads, d) in the query's dtype."""
    import torch

    _, h, q, d = query.shape
    hk, length = key.shape[1], key.shape[2]
    g = h // hk
    rows = g * q
    if query.stride(-1) != 1:
        query = query.contiguous()
    out = torch.empty(1, q, h, d, dtype=query.dtype, device=query.device)
    k = _kernels()
    common = (
        query.stride(1),
        query.stride(2),
        key.stride(1),
        key.stride(2),
        value.stride(1),
        value.stride(2),
        out.stride(1),
        out.stride(2),
        q,
        g,
        rows,
        scale * LOG2E,
    )
    if rows > SPLIT_ROWS:
        grid = (-(-rows // PREFILL_ROWS), hk, 1)
        k.attend[grid](
            query, key, value, start, out, out, out, *common, 1,
            SPLIT=length, ONE=True, BLOCK_R=PREFILL_ROWS, BLOCK_N=PREFILL_BLOCK_N, D=d,
            num_warps=PREFILL_WARPS, num_stages=PREFILL_STAGES,
        )  # fmt: skip
        return out
    split = SPLIT if rows <= ROWS else WIDE_SPLIT
    splits = -(-length // split)
    part = torch.empty(hk, splits, rows, d, dtype=torch.float32, device=query.device)
    lse = torch.empty(hk, splits, rows, dtype=torch.float32, device=query.device)
    grid = (-(-rows // ROWS), hk, splits)
    k.attend[grid](
        query, key, value, start, out, part, lse, *common, splits,
        SPLIT=split, ONE=False, BLOCK_R=ROWS, BLOCK_N=SPLIT_BLOCK_N, D=d,
        num_warps=SPLIT_WARPS, num_stages=SPLIT_STAGES,
    )  # fmt: skip
    k.combine[(rows, hk)](
        part, lse, start, out, out.stride(1), out.stride(2), q, g, rows, splits,
        SPLIT=split, CHUNK=COMBINE_CHUNK, D=d, num_warps=COMBINE_WARPS,
    )  # fmt: skip
    return out


def prepare(qkv: Any, q_weight: Any, k_weight: Any, eps: float, cos: Any, sin: Any, k_cache: Any, v_cache: Any,
            start: Any, heads: int, kv_heads: int) -> Any:  # fmt: skip
    """One kernel for what a Qwen3 attention does between its projections and the attention: ``qkv``
    (1, q, (heads + 2 kv_heads) · d), the packed projections' output, gives the queries RMS-normed
    over each head and rotated (returned, (1, q, heads, d)), and the keys (normed, rotated) and values
    written into ``k_cache``/``v_cache`` (1, kv heads, length, d) at positions start .. start + q - 1."""
    import torch

    _, q, _ = qkv.shape
    d = k_cache.shape[-1]
    if qkv.stride(-1) != 1:
        qkv = qkv.contiguous()
    cos, sin = cos.reshape(q, d), sin.reshape(q, d)
    query = torch.empty(1, q, heads, d, dtype=qkv.dtype, device=qkv.device)
    block = 1 if q == 1 else PREPARE_TOKENS
    _kernels().prepare[(-(-q // block), heads + 2 * kv_heads)](
        qkv, q_weight, k_weight, cos, sin, query, k_cache, v_cache, start,
        qkv.stride(1), cos.stride(0), sin.stride(0), query.stride(1), query.stride(2),
        k_cache.stride(1), k_cache.stride(2), v_cache.stride(1), v_cache.stride(2),
        q, eps, heads, kv_heads, D=d, HALF=d // 2, BLOCK_T=block, num_warps=1 if q == 1 else 4,
    )  # fmt: skip
    return query


@contextlib.contextmanager
def kernel_attention(model: Any, kv: Any, start: Any) -> Iterator[None]:
    """While active, each text decoder layer whose q/k/v projections ``fused.pack_projections`` packed
    attends in three kernels (``prepare``, then ``attend``'s two) instead of transformers' norm, rotary,
    cache-write and attention kernels: over ``kv`` (the engine's ``KVCache``), whose first ``start``
    positions (a 0-d tensor on the device) are held. Layers left unpacked keep their own forward."""
    from torch.nn.functional import linear

    from pixelpilot.agent.models.fused import instance_forwards

    forwards = []
    for i, layer in enumerate(getattr(model.model.language_model, "layers", [])):
        attn = layer.self_attn
        packed = attn.__dict__.get("_pp_qkv")
        if packed is None or not hasattr(attn, "q_norm") or not hasattr(attn, "k_norm"):
            continue
        whole, (nq, nk, _) = packed
        d = int(attn.head_dim)

        def forward(
            hidden_states: Any, position_embeddings: Any, *args: Any,
            _a: Any = attn, _w: Any = whole, _i: int = i, _h: int = nq // d, _hk: int = nk // d, **kwargs: Any,
        ) -> tuple[Any, None]:  # fmt: skip
            cos, sin = position_embeddings
            k_cache, v_cache = kv.k[_i], kv.v[_i]
            qkv = linear(hidden_states, _w)
            query = prepare(
                qkv, _a.q_norm.weight, _a.k_norm.weight, float(_a.q_norm.variance_epsilon), cos, sin,
                k_cache, v_cache, start, _h, _hk,
            )  # fmt: skip
            out = attend(query.transpose(1, 2), k_cache, v_cache, start, float(_a.scaling))
            return _a.o_proj(out.reshape(*hidden_states.shape[:-1], -1)), None

        forwards.append((attn, forward))
    with instance_forwards(forwards):
        yield


@functools.cache
def _kernels() -> Any:
    """The Triton kernels (importing this module needs no Triton; Triton's interpreter, when
    ``TRITON_INTERPRET=1``, takes the kernels as they are defined: see the tests)."""
    import importlib

    return importlib.import_module("pixelpilot.agent.models.triton_attention")
