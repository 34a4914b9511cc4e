"""Grouped-query attention without copying keys and values per query head, for the engine's passes.

Qwen3-VL's text model has fewer key/value heads than query heads (2B: 16 query, 8 key/value; 4B: 32 and
8). transformers' sdpa path, given an attention mask (the engine always gives one: it attends over a
bucket of a static cache), copies every key and value head once per query head sharing it
(``repeat_kv``) in every layer of every pass: over a long cache that copy, and reading it back, is
most of a decode pass. Here the query heads that share a key/value head are laid along the query axis
instead, so one ``scaled_dot_product_attention`` call reads each key and value once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["NAME", "engine_attention", "filled_cache", "grouped_attention", "grouped_sdpa"]

NAME = "pixelpilot_grouped_sdpa"


def grouped_sdpa(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function signature: query (b, h, q, d), key/value (b, hk, L, d);
    returns (b, q, h, d)."""
    import torch

    b, h, q, d = query.shape
    hk, length = key.shape[1], key.shape[2]
    g = h // hk
    scale = scaling if scaling is not None else d**-0.5
    if _filled:  # the engine's kernels: the filled part of the cache, whatever the mask says
        from pixelpilot.agent.models.kernels import attend

        return attend(query, key, value, _filled[-1], scale), None
    # query head j*g + i uses key/value head j (repeat_kv's order): group i-major along the query axis
    grouped = query.reshape(b, hk, g * q, d)
    decode = g * q <= DECODE_ROWS
    mask = attention_mask
    if mask is not None:
        if mask.shape[1] != 1:
            raise ValueError("grouped attention takes a mask shared by every head")
        first = getattr(module, "layer_idx", 0) == 0  # a pass begins at its first layer
        mask = _grouped_mask(mask, g, q, length, additive_dtype=value.dtype if decode else None, fresh=first)
    causal = bool(is_causal if is_causal is not None else False) and mask is None and q > 1
    if causal and g > 1:
        raise ValueError("grouped attention needs an explicit mask for a causal prefill")
    if decode:
        # a decode pass (or a short jump-forward run): a few query rows over a long cache. The fused
        # kernels parallelise over heads and query blocks — here 8 heads, 1 block: a few of the
        # GPU's multiprocessors busy. Two matrix products parallelise over the cache's length; the
        # mask is added in the first one's epilogue and softmax reads bf16 and computes in float.
        keys = key.transpose(-1, -2)
        if mask is not None:
            scores = torch.baddbmm(
                mask.expand(b * hk, g * q, length),
                (grouped * scale).reshape(b * hk, g * q, d),
                keys.reshape(b * hk, d, length),
            ).reshape(b, hk, g * q, length)
        else:
            scores = torch.matmul(grouped * scale, keys)
        out = torch.matmul(scores.softmax(dim=-1, dtype=torch.float32).to(value.dtype), value)
    else:
        out = torch.nn.functional.scaled_dot_product_attention(
            grouped, key, value, attn_mask=mask, dropout_p=0.0, scale=scale, is_causal=causal
        )
    return out.reshape(b, h, q, d).transpose(1, 2).contiguous(), None


_filled: list[Any] = []
"""While a pass runs under :func:`filled_cache`: the pass's first cache position (a 0-d tensor)."""


@contextlib.contextmanager
def filled_cache(start: Any) -> Iterator[None]:
    """Attention in the engine's Triton kernels (``agent.models.kernels``): key and value are the whole
    cache, of which the first ``start`` positions (a 0-d long tensor on the device, read when the
    pass runs: a graph replays with any) are held, and the pass's own tokens follow."""
    _filled.append(start)
    try:
        yield
    finally:
        _filled.pop()


_last: list[Any] = []
"""The current pass's mask, as given and as laid out for the grouped heads: every layer of a pass gets
the same mask tensor, so it is laid out at the first layer and reused by the others (in a CUDA graph:
once per replay, from the graph's own mask buffer). The mask is held, so its memory cannot be another
tensor's while it is cached."""


def _grouped_mask(mask: Any, g: int, q: int, length: int, *, additive_dtype: Any, fresh: bool) -> Any:
    """``mask`` (b, 1, q, ≥length, True = attend) for the grouped query axis: boolean for sdpa, or
    additive (0 / -inf in ``additive_dtype``) for the decode products; laid out anew when ``fresh``
    (a pass's first layer), else taken from that layer when it is the same mask in the same shape."""
    import torch

    key = (mask, g, q, length, additive_dtype)
    if not fresh and _last and _last[0][0] is mask and _last[0][1:] == key[1:]:
        return _last[1]
    laid = mask[..., :length].expand(mask.shape[0], 1, q, length).repeat(1, 1, g, 1)
    if additive_dtype is not None:
        laid = (
            torch.zeros(laid.shape, dtype=additive_dtype, device=laid.device)
            .masked_fill_(~laid, float("-inf"))
            .reshape(mask.shape[0], g * q, length)
        )
    _last[:] = [key, laid]
    return laid


DECODE_ROWS = 256
"""Query rows (query heads per key/value head × query length) up to which the two-product form is used."""


def engine_attention(text_config: Any) -> contextlib.AbstractContextManager[None]:
    """The engine's attention: grouped (this module) unless ``PIXELPILOT_ENGINE_ATTENTION=sdpa`` asks
    for transformers' own."""
    import os

    if os.environ.get("PIXELPILOT_ENGINE_ATTENTION", "grouped") == "sdpa":
        return contextlib.nullcontext()
    return grouped_attention(text_config)


_registered = False


@contextlib.contextmanager
def grouped_attention(text_config: Any) -> Iterator[None]:
    """While active, the text model (whose config is ``text_config``) attends with :func:`grouped_sdpa`."""
    global _registered
    if getattr(text_config, "num_key_value_heads", None) in (
        None,
        getattr(text_config, "num_attention_heads", None),
    ):
        yield  # not grouped: nothing to gain
        return
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(NAME, grouped_sdpa)
        _registered = True
    saved = text_config._attn_implementation
    text_config._attn_implementation = NAME
    try:
        yield
    finally:
        text_config._attn_implementation = saved
