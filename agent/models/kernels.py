"""Attention over the filled part of the engine's cache, in Triton: the graphs attend over the whole
buffer, and each pass reads only the positions its tokens may see.

Without it a captured pass attends over a fixed bucket of the cache with an explicit mask: a 9.5k-token
prompt in a 16k bucket reads 16k positions of keys and values a layer, and every new bucket captures
new graphs. Here the number of positions held comes from a tensor the graph reads (the pass's first
cache position), so one graph per chunk length serves every prompt length, and a row of the grouped
query (query heads sharing a key/value head, laid along the query axis) stops at its own position.

Two forms of one kernel:

* **split over the cache** (decode and short chunks: a few query rows): the filled positions are cut
  into as many slices of whole tiles as make two programs a multiprocessor over all key/value heads
  (``SPLITS_PER_SM``; the slice size read from the device at each pass, so one captured grid fits
  every length); a second kernel combines the slices by their log-sum-exp (flash-decoding). A decode
  pass reads each filled position's keys and values once, on every multiprocessor at once.
* **blocks of query rows** (prefill): flash attention that stops at the block's last visible
  position.

The decoder around them (``decoder_forward``): the engine's passes run Qwen3-VL's text decoder in its
own loop — no attention mask, no cache bookkeeping, the residual adds joined to the RMS norms after
them — calling the model's own modules and weights.

Queries are read in transformers' layout (batch 1, heads, tokens, dim: any strides, the last one 1) and
the output is written in the layout its ``o_proj`` takes (tokens, heads, dim): no copy either side.
On CPU, ``TRITON_INTERPRET=1`` runs the same kernels in Triton's interpreter (the tests do).
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["attend", "available", "choose", "decoder_forward", "decoder_ready", "prepare", "self_test"]

ROWS = 16
"""Query rows per program in the split form (the least a Triton matrix product takes)."""
SPLITS_PER_SM = 2
"""The split form cuts the filled cache into slices of whole tiles, so many that all key/value heads
together make this many programs per multiprocessor (a decode pass; chunks of more rows, which have
more programs already, take fewer slices): every program busy at every cache length, where slices of
a fixed size left a second wave of a few programs."""
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
        length, q = 1024, 256  # a prefill's length is a multiple of 128: the same compiled kernel
        key = torch.randn(1, kv_heads, length, dim, dtype=dtype, device=device, generator=gen)
        value = torch.randn(1, kv_heads, length, dim, dtype=dtype, device=device, generator=gen)
        qkv = torch.randn(1, q, (heads + 2 * kv_heads) * dim, dtype=dtype, device=device, generator=gen)
        ones = torch.ones(dim, dtype=dtype, device=device)
        cos = torch.ones(1, q, dim, dtype=dtype, device=device)
        start = torch.tensor(500, device=device)
        sin = torch.zeros_like(cos)
        prepare(qkv[:, :1], ones, ones, 1e-6, cos[:, :1], sin[:, :1], key, value, start, heads, kv_heads)
        query = prepare(qkv, ones, ones, 1e-6, cos, sin, key, value, start, heads, kv_heads)
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
    if rows > SPLIT_ROWS:  # a prefill: blocks of query rows, each over all it sees (cutting the
        # cache into slices too did not pay: benchmarks/results/attention_kernels_h200_dynamic_split.json)
        block_r, block_n, warps, stages = PREFILL_ROWS, PREFILL_BLOCK_N, PREFILL_WARPS, PREFILL_STAGES
        splits = 1
    else:  # a few rows: every program on a slice of the cache
        block_r, block_n, warps, stages = ROWS, SPLIT_BLOCK_N, SPLIT_WARPS, SPLIT_STAGES
        splits = _splits(query.device, hk, -(-rows // ROWS), length, block_n)
    grid = (-(-rows // block_r), hk, splits)
    one = splits == 1
    part = out if one else torch.empty(hk, splits, rows, d, dtype=torch.float32, device=query.device)
    lse = out if one else torch.empty(hk, splits, rows, dtype=torch.float32, device=query.device)
    kernel = k.attend_prefill if rows > SPLIT_ROWS else k.attend
    kernel[grid](
        query, key, value, start, out, part, lse, *common, splits,
        ONE=one, BLOCK_R=block_r, BLOCK_N=block_n, D=d, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    if not one:
        k.combine[(rows, hk)](
            part, lse, start, out, out.stride(1), out.stride(2), q, g, rows, splits,
            BLOCK_N=block_n, CHUNK=COMBINE_CHUNK, D=d, num_warps=COMBINE_WARPS,
        )  # fmt: skip
    return out


def _splits(device: Any, kv_heads: int, row_blocks: int, length: int, block_n: int) -> int:
    """Slices of the cache a split-form pass cuts (``SPLITS_PER_SM``): fixed for a device and a head
    layout, so a captured graph's grid fits every cache length."""
    sms = _multiprocessors(device.index) if device.type == "cuda" else 16
    programs = max(1, SPLITS_PER_SM * sms // (kv_heads * row_blocks))
    return max(1, min(programs, -(-length // block_n)))


@functools.cache
def _multiprocessors(index: int | None) -> int:
    import torch

    return int(torch.cuda.get_device_properties(index).multi_processor_count)


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


def decoder_ready(model: Any) -> bool:
    """Every text decoder layer of ``model`` is as :func:`decoder_forward` expects: q/k/v and gate/up
    packed (``fused.pack_projections``), q/k norms."""
    layers = list(getattr(model.model.language_model, "layers", []))
    return bool(layers) and all(
        "_pp_qkv" in layer.self_attn.__dict__
        and "_pp_gate_up" in layer.mlp.__dict__
        and hasattr(layer.self_attn, "q_norm")
        and hasattr(layer.self_attn, "k_norm")
        for layer in layers
    )


def decoder_forward(
    model: Any, kv: Any, embeds: Any, positions: Any, start: Any, *,
    deep: list[Any] | None = None, at: Any = None, last: Any = None,
) -> Any:  # fmt: skip
    """The text decoder of a Qwen3-VL as transformers' computes it, in fewer kernels: the residual
    add joined to the next RMS norm (Liger's fused add-norm when the engine's fused functions are
    active), each layer's projections packed, ``prepare`` and ``attend`` for its attention over
    ``kv`` (the engine's ``KVCache``, whose first ``start`` positions — a 0-d tensor on the device —
    are held), no mask and no cache-index bookkeeping. ``embeds`` (1, q, hidden), ``positions``
    (3, 1, q); ``deep``/``at``: the vision tower's deepstack features and their token indices, added
    after the first layers as transformers does. Returns the float logits of rows ``last`` (a long
    tensor; None: every row). Only for a model :func:`decoder_ready` accepts."""
    from torch.nn.functional import linear

    from pixelpilot.agent.models.fused import active

    lm = model.model.language_model
    f = active()
    rms, add_rms, swiglu = f.get("rms"), f.get("add_rms"), f.get("swiglu")

    def norm(h: Any, res: Any, module: Any) -> tuple[Any, Any]:
        """(RMS norm of res + h, res + h); res None: of h."""
        if res is not None:
            if add_rms is not None:
                return add_rms(h, res, module.weight, module.variance_epsilon)
            h = res + h
        return (rms(h, module.weight, module.variance_epsilon) if rms is not None else module(h)), h

    cos, sin = lm.rotary_emb(embeds, positions)
    q = embeds.shape[1]
    h, res = embeds, None
    for i, layer in enumerate(lm.layers):
        a, mlp = layer.self_attn, layer.mlp
        x, res = norm(h, res, layer.input_layernorm)
        whole, (nq, nk, _) = a.__dict__["_pp_qkv"]
        d = int(a.head_dim)
        query = prepare(
            linear(x, whole), a.q_norm.weight, a.k_norm.weight, float(a.q_norm.variance_epsilon), cos, sin,
            kv.k[i], kv.v[i], start, nq // d, nk // d,
        )  # fmt: skip
        out = attend(query.transpose(1, 2), kv.k[i], kv.v[i], start, float(a.scaling))
        h = a.o_proj(out.reshape(1, q, -1))
        x, res = norm(h, res, layer.post_attention_layernorm)
        gate, up = linear(x, mlp.__dict__["_pp_gate_up"][0]).chunk(2, dim=-1)
        h = mlp.down_proj(swiglu(gate, up) if swiglu is not None else mlp.act_fn(gate) * up)
        if deep is not None and i < len(deep):  # transformers adds them to the layer's output
            h = (res + h).index_add(1, at, deep[i][None].to(h.dtype))
            res = None
    x, _ = norm(h, res, lm.norm)
    rows = x[0] if last is None else x[0].index_select(0, last)
    return model.lm_head(rows).float()


@functools.cache
def _kernels() -> Any:
    """The Triton kernels (importing this module needs no Triton; Triton's interpreter, when
    ``TRITON_INTERPRET=1``, takes the kernels as they are defined: see the tests)."""
    import importlib

    return importlib.import_module("pixelpilot.agent.models.triton_attention")
