"""The Triton kernels behind ``agent.models.kernels`` (which see): causal attention of a few grouped
query rows over the filled part of the engine's cache, split over the cache and combined by
log-sum-exp, or one program per block of query rows. Imported only where Triton is."""

import triton
import triton.language as tl

__all__ = ["attend", "attend_prefill", "combine", "prepare"]


@triton.jit
def _tiles(
    qv, kb, vb, m, lsum, acc, lo, hi, limit, sk_n, sv_n, qk_scale,
    MASKED: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Online softmax over the cache positions lo .. hi - 1 in tiles of ``BLOCK_N`` (exp2, the scale
    folded with log2 e); ``MASKED``: the tiles where some row's view ends (else every row sees all)."""
    d = tl.arange(0, D)
    for n0 in range(lo, hi, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        if MASKED:
            inside = n < hi
            kt = tl.load(kb + n[None, :] * sk_n + d[:, None], mask=inside[None, :], other=0.0)
            s = tl.dot(qv, kt) * qk_scale
            s = tl.where(n[None, :] <= limit[:, None], s, float("-inf"))
            m_new = tl.maximum(m, tl.max(s, 1))
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
            vv = tl.load(vb + n[:, None] * sv_n + d[None, :], mask=inside[:, None], other=0.0)
        else:
            kt = tl.load(kb + n[None, :] * sk_n + d[:, None])
            s = tl.dot(qv, kt) * qk_scale
            m_new = tl.maximum(m, tl.max(s, 1))
            m_use = m_new
            vv = tl.load(vb + n[:, None] * sv_n + d[None, :])
        p = tl.exp2(s - m_use[:, None])
        alpha = tl.exp2(m - m_use)
        lsum = lsum * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(vv.dtype), vv)
        m = m_new
    return m, lsum, acc


# Triton compiles a kernel anew for each integer argument that is 1 or a multiple of 16. Decode and
# jump-forward passes (1 to 64 tokens) run a kernel not specialized on their lengths, so the
# engine's start-up self-test compiles what they run and no new length compiles mid-loop; a prefill
# (padded to a multiple of 128 tokens: one specialization) keeps what the specialization gives
# (measured on an H200: ~9% of the prefill's attention).
_VARYING = ["q_len", "g", "rows", "splits"]


def _attend(
    Q, K, V, Start, Out, Part, Lse,
    sq_h, sq_t, sk_h, sk_n, sv_h, sv_n, so_t, so_h,
    q_len, g, rows, qk_scale, splits,
    ONE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_N: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """Rows ``BLOCK_R`` of the grouped query of key/value head ``program_id(1)`` over slice
    ``program_id(2)`` of the filled cache: the positions up to the pass's last token cut into
    ``splits`` slices of whole tiles (one slice when ``ONE``: the output written as it is)."""
    rb = tl.program_id(0)
    j = tl.program_id(1)
    sp = tl.program_id(2)
    start = tl.load(Start)
    r = rb * BLOCK_R + tl.arange(0, BLOCK_R)
    valid = r < rows
    t = r % q_len
    head = j * g + r // q_len  # grouped rows: query head j*g + i is row i*q_len + t
    limit = tl.where(valid, start + t, -1)  # the last position each row sees
    per = _slice(start + q_len, splits, BLOCK_N)
    lo = sp * per
    hi = tl.minimum(tl.max(limit, 0) + 1, lo + per)
    # tiles every row sees whole, then the tiles where some row's view ends
    seen_by_all = tl.minimum(tl.min(tl.where(valid, limit, 1 << 30), 0) + 1, hi)
    full = tl.maximum(lo + (seen_by_all - lo) // BLOCK_N * BLOCK_N, lo)
    d = tl.arange(0, D)
    qv = tl.load(Q + head[:, None] * sq_h + t[:, None] * sq_t + d[None, :], mask=valid[:, None], other=0.0)
    m = tl.full([BLOCK_R], float("-inf"), tl.float32)
    lsum = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, D], tl.float32)
    kb = K + j * sk_h
    vb = V + j * sv_h
    m, lsum, acc = _tiles(qv, kb, vb, m, lsum, acc, lo, full, limit, sk_n, sv_n, qk_scale, False, BLOCK_N, D)
    m, lsum, acc = _tiles(qv, kb, vb, m, lsum, acc, full, hi, limit, sk_n, sv_n, qk_scale, True, BLOCK_N, D)
    seen = lsum > 0
    part = acc / tl.where(seen, lsum, 1.0)[:, None]
    if ONE:
        ptr = Out + t[:, None] * so_t + head[:, None] * so_h + d[None, :]
        tl.store(ptr, part.to(Out.dtype.element_ty), mask=valid[:, None])
    else:
        at = (j * splits + sp) * rows + r
        tl.store(Part + at[:, None] * D + d[None, :], part, mask=valid[:, None])
        tl.store(Lse + at, tl.where(seen, m + tl.log2(tl.where(seen, lsum, 1.0)), float("-inf")), mask=valid)


attend = triton.jit(do_not_specialize=_VARYING)(_attend)
attend_prefill = triton.jit(_attend)


@triton.jit
def _slice(end, splits, BLOCK_N: tl.constexpr):
    """Positions a slice of the split form takes: ``end`` positions over ``splits`` slices, in whole
    tiles (every slice busy at any length; the last ones empty when the cache is short)."""
    return tl.cdiv(tl.cdiv(end, splits), BLOCK_N) * BLOCK_N


@triton.jit(do_not_specialize=_VARYING)
def combine(
    Part, Lse, Start, Out, so_t, so_h, q_len, g, rows, splits,
    BLOCK_N: tl.constexpr, CHUNK: tl.constexpr, D: tl.constexpr,
):  # fmt: skip
    """One query row of one key/value head: its slices' partial outputs weighted by their log-sum-exp
    (base 2), read ``CHUNK`` slices at a time."""
    r = tl.program_id(0)
    j = tl.program_id(1)
    start = tl.load(Start)
    end = start + q_len
    used = tl.minimum(tl.cdiv(end, _slice(end, splits, BLOCK_N)), splits)  # slices that held a position
    c = tl.arange(0, CHUNK)
    d = tl.arange(0, D)
    base = j * splits * rows + r
    m = tl.max(tl.full([CHUNK], float("-inf"), tl.float32), 0)
    for s0 in range(0, used, CHUNK):
        lse = tl.load(Lse + base + (s0 + c) * rows, mask=s0 + c < used, other=float("-inf"))
        m = tl.maximum(m, tl.max(lse, 0))
    m = tl.where(m == float("-inf"), 0.0, m)
    acc = tl.zeros([D], tl.float32)
    wsum = tl.sum(tl.zeros([CHUNK], tl.float32), 0)
    for s0 in range(0, used, CHUNK):
        live = s0 + c < used
        w = tl.exp2(tl.load(Lse + base + (s0 + c) * rows, mask=live, other=float("-inf")) - m)
        part = tl.load(
            Part + (base + (s0 + c) * rows)[:, None] * D + d[None, :], mask=live[:, None], other=0.0
        )
        acc += tl.sum(part * w[:, None], 0)
        wsum += tl.sum(w, 0)
    out = acc / tl.where(wsum > 0, wsum, 1.0)
    t = r % q_len
    head = j * g + r // q_len
    tl.store(Out + t * so_t + head * so_h + d, out.to(Out.dtype.element_ty))


@triton.jit(do_not_specialize=["q_len"])
def prepare(
    QKV, Wq, Wk, Cos, Sin, Qout, Kc, Vc, Start,
    s_t, s_ct, s_st, sq_t, sq_h, sk_h, sk_n, sv_h, sv_n,
    q_len, eps, heads, kv_heads,
    D: tl.constexpr, HALF: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    tb = tl.program_id(0)
    h = tl.program_id(1)
    start = tl.load(Start)
    t = tb * BLOCK_T + tl.arange(0, BLOCK_T)
    real = (t < q_len)[:, None]
    lo = tl.arange(0, HALF)[None, :]
    base = QKV + t[:, None] * s_t + h * D
    x1 = tl.load(base + lo, mask=real, other=0.0).to(tl.float32)
    x2 = tl.load(base + HALF + lo, mask=real, other=0.0).to(tl.float32)
    if h < heads + kv_heads:  # a query or key head: RMS norm over the head, then the rotary embedding
        if h < heads:
            w1 = tl.load(Wq + lo).to(tl.float32)
            w2 = tl.load(Wq + HALF + lo).to(tl.float32)
        else:
            w1 = tl.load(Wk + lo).to(tl.float32)
            w2 = tl.load(Wk + HALF + lo).to(tl.float32)
        r = tl.rsqrt((tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / D + eps)[:, None]
        y1 = w1 * x1 * r
        y2 = w2 * x2 * r
        c1 = tl.load(Cos + t[:, None] * s_ct + lo, mask=real, other=0.0).to(tl.float32)
        c2 = tl.load(Cos + t[:, None] * s_ct + HALF + lo, mask=real, other=0.0).to(tl.float32)
        n1 = tl.load(Sin + t[:, None] * s_st + lo, mask=real, other=0.0).to(tl.float32)
        n2 = tl.load(Sin + t[:, None] * s_st + HALF + lo, mask=real, other=0.0).to(tl.float32)
        o1 = y1 * c1 - y2 * n1
        o2 = y2 * c2 + y1 * n2
        if h < heads:
            ptr = Qout + t[:, None] * sq_t + h * sq_h
        else:
            ptr = Kc + (h - heads) * sk_h + (start + t[:, None]) * sk_n
        tl.store(ptr + lo, o1.to(Qout.dtype.element_ty), mask=real)
        tl.store(ptr + HALF + lo, o2.to(Qout.dtype.element_ty), mask=real)
    else:  # a value head: into the cache as it is
        ptr = Vc + (h - heads - kv_heads) * sv_h + (start + t[:, None]) * sv_n
        tl.store(ptr + lo, x1.to(Vc.dtype.element_ty), mask=real)
        tl.store(ptr + HALF + lo, x2.to(Vc.dtype.element_ty), mask=real)
