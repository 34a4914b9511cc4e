"""Measured and not adopted (benchmarks/results/linear_kernels_h200.md): the text decoder's matrix
products in the engine's own Triton kernels, over bf16 or FP8 weights (e4m3, one scale per output row).
Kept with ``linear_kernels.py`` so the measurement can be run again.

* ``matvec``: a pass of up to ``MATVEC_ROWS`` rows — each program owns a few output columns and reads
  their weight rows once; bf16 or FP8 weights (scaled as they are summed).
* ``matmul``: chunks of up to ``MATMUL_ROWS`` rows over FP8 weights on the tensor cores, each weight
  tile turned to bf16 as it is read.
* ``dequantize``: FP8 weights back to bf16 for a prefill's cuBLAS product.
* ``matvec_t``: a pass's products on the tensor cores with the weights as the wide operand
  (out^T = W · x^T, x^T padded to 16 columns). MODE 0: bf16 weights; 1: FP8 weights turned to fp16
  (x too) as read; 2: FP8 × FP8 (x quantized in the program, one scale per row).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

MATVEC_ROWS = 4
"""Rows up to which a product runs as ``matvec``."""
MATMUL_ROWS = 64
"""Rows up to which an FP8 product runs as ``matmul`` (more: dequantized, then cuBLAS)."""
MATVEC_TILE = (8, 512, 4)
"""``matvec``'s output columns and weight columns a program reads at a time, and its warps."""
MATMUL_TILE = (16, 64, 128, 4, 4)
"""``matmul``'s rows, columns, depth of a tile, warps, pipeline stages."""
FP8_MAX = 448.0
"""The largest e4m3 value: each weight row is scaled so its largest magnitude lands here."""


class Fp8Weight:
    """A weight matrix (out, in) as FP8 e4m3 values and one float32 scale per output row."""

    __slots__ = ("data", "scale")

    def __init__(self, data: Any, scale: Any) -> None:
        self.data, self.scale = data, scale

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    def rows(self, lo: int, hi: int) -> Fp8Weight:
        """Output rows lo .. hi - 1 (views: no copy)."""
        return Fp8Weight(self.data[lo:hi], self.scale[lo:hi])

    def dequantized(self, dtype: Any) -> Any:
        """The weights in ``dtype`` (a new tensor)."""
        if _triton(self.data):
            n, k = self.shape
            out = torch.empty(n, k, dtype=dtype, device=self.data.device)
            dequantize[(-(-n // 32), -(-k // 256))](self.data, self.scale, out, n, k, BLOCK_N=32, BLOCK_K=256)
            return out
        return (self.data.float() * self.scale[:, None]).to(dtype)


def quantize_fp8(weight: Any) -> Fp8Weight:
    """``weight`` (out, in) as FP8 with one scale per output row (its largest magnitude / 448)."""

    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / FP8_MAX).clamp(min=1e-12)
    data = (w / scale[:, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return Fp8Weight(data.contiguous(), scale.contiguous())


def project(x: Any, weight: Any, *, matvec_bf16: bool = False) -> Any:
    """``x @ weight.T`` over the last axis of ``x`` for a bf16/fp32 weight tensor or an
    :class:`Fp8Weight`, by the kernel that suits the number of rows (module docstring); a bf16 weight
    goes to cuBLAS unless ``matvec_bf16``."""
    from torch.nn.functional import linear

    fp8 = isinstance(weight, Fp8Weight)
    if not fp8 and not (matvec_bf16 and _triton(weight) and x.dtype == weight.dtype):
        return linear(x, weight)
    rows = x.numel() // x.shape[-1]
    if not _triton(weight.data if fp8 else weight):
        return linear(x, weight.dequantized(x.dtype) if fp8 else weight)
    if rows <= MATVEC_ROWS:
        return _run(x, weight, rows, "matvec")
    if not fp8:
        return linear(x, weight)
    if rows <= MATMUL_ROWS:
        return _run(x, weight, rows, "matmul")
    return linear(x, weight.dequantized(x.dtype))


def _run(x: Any, weight: Any, rows: int, kernel: str) -> Any:
    fp8 = isinstance(weight, Fp8Weight)
    w, scale = (weight.data, weight.scale) if fp8 else (weight, weight)
    n, k = w.shape
    flat = x.reshape(rows, k)
    if flat.stride(-1) != 1:
        flat = flat.contiguous()
    out = torch.empty(rows, n, dtype=x.dtype, device=x.device)
    args = (flat, w, scale, out)
    if kernel == "matvec":
        bn, bk, warps = MATVEC_TILE
        block_m = 1 << (rows - 1).bit_length()
        matvec[(-(-n // bn),)](
            *args, n, k, flat.stride(0), w.stride(0), out.stride(0),
            M=rows, BLOCK_M=block_m, BLOCK_N=bn, BLOCK_K=bk, SCALED=fp8, EVEN=n % bn == 0 and k % bk == 0,
            num_warps=warps,
        )  # fmt: skip
    else:
        bm, bn, bk, warps, stages = MATMUL_TILE
        matmul[(-(-rows // bm), -(-n // bn))](
            *args, rows, n, k, flat.stride(0), w.stride(0), out.stride(0),
            BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, SCALED=fp8, num_warps=warps, num_stages=stages,
        )  # fmt: skip
    return out.reshape(*x.shape[:-1], n)


def _triton(t: Any) -> bool:
    """The Triton kernels run on ``t``'s device: CUDA, or Triton's interpreter."""
    return t.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"


# Row counts and matrix sizes vary between products: one compiled kernel for each tile shape, not one
# for each size Triton would otherwise specialize on (1 or a multiple of 16).
_VARYING = ["n", "k", "sx", "sw", "so"]


@triton.jit(do_not_specialize=_VARYING)
def matvec(
    X, W, S, Out, n, k, sx, sw, so,
    M: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SCALED: tl.constexpr, EVEN: tl.constexpr,
):  # fmt: skip
    """``Out[:M] = X[:M] @ W.T`` (× ``S`` per output column when ``SCALED``: FP8 weights) for a few
    rows: each program owns ``BLOCK_N`` output columns and reads their weight rows once, in steps of
    ``BLOCK_K``, keeping every product in its own lane until one sum at the end (no tensor cores: a
    decode pass is bound by the weight bytes). ``EVEN``: ``n`` and ``k`` are multiples of the tile."""
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_M)
    ks = tl.arange(0, BLOCK_K)
    wp = W + cols[:, None] * sw + ks[None, :]
    xp = X + rows[:, None] * sx + ks[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
    for k0 in range(0, k, BLOCK_K):
        if EVEN:
            w = tl.load(wp, eviction_policy="evict_first").to(tl.float32)
            x = tl.load(xp, mask=rows[:, None] < M, other=0.0).to(tl.float32)
        else:
            inside = k0 + ks < k
            w = tl.load(
                wp, mask=(cols[:, None] < n) & inside[None, :], other=0.0, eviction_policy="evict_first"
            )
            w = w.to(tl.float32)
            x = tl.load(xp, mask=(rows[:, None] < M) & inside[None, :], other=0.0).to(tl.float32)
        acc += x[:, None, :] * w[None, :, :]
        wp += BLOCK_K
        xp += BLOCK_K
    out = tl.sum(acc, axis=2)
    if SCALED:
        out = out * tl.load(S + cols, mask=cols < n, other=0.0)[None, :]
    mask = (rows[:, None] < M) & (cols[None, :] < n)
    tl.store(Out + rows[:, None] * so + cols[None, :], out.to(Out.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["m"] + _VARYING)
def matmul(
    X, W, S, Out, m, n, k, sx, sw, so,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SCALED: tl.constexpr,
):  # fmt: skip
    """``Out = X @ W.T`` (× ``S`` per output column when ``SCALED``) on the tensor cores, the weight
    tile turned to the activations' dtype as it is read: chunks of more rows than ``matvec`` takes."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, k, BLOCK_K):
        inside = k0 + ks < k
        x = tl.load(
            X + rows[:, None] * sx + (k0 + ks)[None, :], mask=(rows[:, None] < m) & inside[None, :], other=0.0
        )
        w = tl.load(
            W + cols[None, :] * sw + (k0 + ks)[:, None], mask=(cols[None, :] < n) & inside[:, None], other=0.0
        )
        acc = tl.dot(x, w.to(x.dtype), acc)
    if SCALED:
        acc = acc * tl.load(S + cols, mask=cols < n, other=0.0)[None, :]
    mask = (rows[:, None] < m) & (cols[None, :] < n)
    tl.store(Out + rows[:, None] * so + cols[None, :], acc.to(Out.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n", "k"])
def dequantize(W, S, Out, n, k, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """``Out = W × S`` per row: FP8 weights (n, k) and their row scales back to ``Out``'s dtype."""
    r = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    c = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    mask = (r[:, None] < n) & (c[None, :] < k)
    w = tl.load(W + r[:, None] * k + c[None, :], mask=mask, other=0.0).to(tl.float32)
    s = tl.load(S + r, mask=r < n, other=0.0)
    tl.store(Out + r[:, None] * k + c[None, :], (w * s[:, None]).to(Out.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["n", "k", "sx", "sw", "so"])
def matvec_t(
    X,
    W,
    S,
    Out,
    n,
    k,
    sx,
    sw,
    so,
    M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    MODE: tl.constexpr,
    KFULL: tl.constexpr,
):
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.arange(0, 16)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_N, 16), dtype=tl.float32)
    if MODE == 2:
        kk = tl.arange(0, KFULL)
        xa = tl.load(
            X + rows[None, :] * sx + kk[:, None], mask=(rows[None, :] < M) & (kk[:, None] < k), other=0.0
        )
        xmax = tl.max(tl.abs(xa.to(tl.float32)), axis=0)  # [16]
        xs = tl.maximum(xmax / 448.0, 1e-12)
    for k0 in range(0, k, BLOCK_K):
        w = tl.load(W + cols[:, None] * sw + (k0 + ks)[None, :], eviction_policy="evict_first")
        x = tl.load(X + rows[None, :] * sx + (k0 + ks)[:, None], mask=rows[None, :] < M, other=0.0)
        if MODE == 0:
            acc = tl.dot(w, x, acc)
        elif MODE == 1:
            acc = tl.dot(w.to(tl.float16), x.to(tl.float16), acc)
        else:
            xq = (x.to(tl.float32) / xs[None, :]).to(tl.float8e4nv)
            acc = tl.dot(w, xq, acc)
    if MODE >= 1:
        acc = acc * tl.load(S + cols)[:, None]
    if MODE == 2:
        acc = acc * xs[None, :]
    tl.store(Out + rows[None, :] * so + cols[:, None], acc.to(Out.dtype.element_ty), mask=rows[None, :] < M)


def run_t(x, w, scale, mode, bn, bk, warps, stages):
    rows, k = x.shape
    n = w.shape[0]
    out = torch.empty(rows, n, dtype=x.dtype, device=x.device)
    kfull = triton.next_power_of_2(k) if mode == 2 else 16
    matvec_t[(n // bn,)](
        x,
        w,
        scale,
        out,
        n,
        k,
        x.stride(0),
        w.stride(0),
        out.stride(0),
        M=rows,
        BLOCK_N=bn,
        BLOCK_K=bk,
        MODE=mode,
        KFULL=kfull,
        num_warps=warps,
        num_stages=stages,
    )
    return out
