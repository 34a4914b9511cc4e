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

import functools
from typing import Any

__all__ = ["attend", "available"]

ROWS = 16
"""Query rows per program in the split form (the least a Triton matrix product takes)."""
PREFILL_ROWS = 64
"""Query rows per program in the prefill form."""
SPLIT = 256
"""Cache positions per program in the split form, for up to ``ROWS`` query rows (a decode pass)."""
WIDE_SPLIT = 1024
"""The same for chunks of more rows (jump-forward runs): fewer partial results to keep and combine."""
SPLIT_ROWS = 256
"""Query rows up to which the split form is used; above, the prefill form."""
BLOCK_N = 64
"""Cache positions a program takes at a time."""


@functools.cache
def available() -> bool:
    """Triton can be imported (the engine then uses these kernels on CUDA)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception:
        return False
    return True


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
        scale,
    )
    if rows > SPLIT_ROWS:
        grid = (-(-rows // PREFILL_ROWS), hk, 1)
        k.attend[grid](
            query, key, value, start, out, out, out, *common, 1,
            SPLIT=length, ONE=True, BLOCK_R=PREFILL_ROWS, BLOCK_N=BLOCK_N, D=d, num_warps=4, num_stages=2,
        )  # fmt: skip
        return out
    split = SPLIT if rows <= ROWS else WIDE_SPLIT
    splits = -(-length // split)
    part = torch.empty(hk, splits, rows, d, dtype=torch.float32, device=query.device)
    lse = torch.empty(hk, splits, rows, dtype=torch.float32, device=query.device)
    grid = (-(-rows // ROWS), hk, splits)
    k.attend[grid](
        query, key, value, start, out, part, lse, *common, splits,
        SPLIT=split, ONE=False, BLOCK_R=ROWS, BLOCK_N=BLOCK_N, D=d, num_warps=4, num_stages=2,
    )  # fmt: skip
    k.combine[(-(-rows // ROWS), hk)](
        part, lse, start, out, out.stride(1), out.stride(2), q, g, rows, splits,
        SPLIT=split, BLOCK_R=ROWS, D=d, num_warps=4,
    )  # fmt: skip
    return out


@functools.cache
def _kernels() -> Any:
    """The Triton kernels (importing this module needs no Triton; Triton's interpreter, when
    ``TRITON_INTERPRET=1``, takes the kernels as they are defined: see the tests)."""
    import importlib

    return importlib.import_module("pixelpilot.agent.models.triton_attention")
