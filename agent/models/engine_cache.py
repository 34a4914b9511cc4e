"""The engine's KV cache: every layer's keys and values in fixed buffers that outlive a step, the
buckets of it a CUDA graph attends to, and the capture of those graphs."""

from __future__ import annotations

from typing import Any

__all__ = ["VIEW_STEP", "VIEW_WIDE_FROM", "VIEW_WIDE_STEP", "KVCache", "capture_graph", "view_bucket"]

VIEW_STEP = 512
"""Graphs attend over the cache in steps of this many positions (up to ``VIEW_WIDE_FROM``)."""
VIEW_WIDE_FROM, VIEW_WIDE_STEP = 2048, 1024
"""Above this, doubling buckets, or (``Engine.coarse_*_views`` off) steps of this many: a pass reads
the keys and values of every position it attends to, so a bucket past the prompt's end costs each
pass its share (a 9.5k-token prompt attends over 16k positions with doubling buckets), while each
new bucket costs graph captures."""


class KVCache:
    """Keys/values of every layer in fixed buffers. ``index`` holds the positions the next forward
    writes; ``view`` limits attention to the first ``view`` positions (None: the whole buffer, as the
    captured graphs use). Quacks like a transformers cache for ``update``."""

    def __init__(self, layers: int, heads: int, dim: int, length: int, dtype: Any, device: Any) -> None:
        import torch

        self.length = length
        self.k = [torch.zeros(1, heads, length, dim, dtype=dtype, device=device) for _ in range(layers)]
        self.v = [torch.zeros(1, heads, length, dim, dtype=dtype, device=device) for _ in range(layers)]
        self.index = torch.zeros(length, dtype=torch.long, device=device)
        self.n = 1
        self.view: int | None = None
        self.seen = 0
        self.is_compileable = False

    def update(self, key: Any, value: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        idx = self.index[: key.shape[2]]
        self.k[layer_idx].index_copy_(2, idx, key)
        self.v[layer_idx].index_copy_(2, idx, value)
        if self.view is None:
            return self.k[layer_idx], self.v[layer_idx]
        return self.k[layer_idx][:, :, : self.view], self.v[layer_idx][:, :, : self.view]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def grown(self, length: int, held: int) -> KVCache:
        """A cache of ``length`` positions holding this one's first ``held`` (the prefix stays reusable)."""
        k0 = self.k[0]
        new = KVCache(len(self.k), k0.shape[1], k0.shape[3], length, k0.dtype, k0.device)
        for dst, src in ((new.k, self.k), (new.v, self.v)):
            for d, s in zip(dst, src, strict=True):
                d[:, :, :held].copy_(s[:, :, :held])
        return new


def capture_graph(run: Any, pool: Any, fused: Any) -> tuple[Any, Any, Any]:
    """Warm ``run`` up on a side stream (allocator, cuBLAS handles), then capture it into a CUDA graph
    sharing the memory ``pool`` (None: the graph's own becomes it), under ``fused()`` and inference mode
    (no autograd history may hold the warm-up's tensors): (graph, its output, the pool)."""
    import torch

    with torch.inference_mode(), fused():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                run()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            out = run()
    return graph, out, pool if pool is not None else graph.pool()


def view_bucket(end: int, max_len: int, *, coarse: bool = False) -> int:
    """How much of the cache a graph attends to when it writes up to ``end``: a bucket, in steps
    of ``VIEW_STEP`` up to ``VIEW_WIDE_FROM`` positions; above, doubling (``coarse``: a prompt
    that grows by a screenshot a step meets a new bucket, and new graphs, only now and then) or
    in steps of ``VIEW_WIDE_STEP`` (less cache read a pass, a new bucket about every step)."""
    if end <= VIEW_WIDE_FROM:
        view = -(-end // VIEW_STEP) * VIEW_STEP
    elif coarse:
        view = VIEW_WIDE_FROM
        while view < end:
            view *= 2
    else:
        view = VIEW_WIDE_FROM + -(-(end - VIEW_WIDE_FROM) // VIEW_WIDE_STEP) * VIEW_WIDE_STEP
    return min(max_len, max(VIEW_STEP, view))
