"""Fewer, larger GPU kernels for the engine's decoder: the RMS norms, the rotary embedding and the
MLP's activation product as fused Triton kernels, swapped into the transformers modules only while the
engine captures its CUDA graphs (plain ``generate`` on the same model uses transformers' own).

Two sources of those kernels: Liger-Kernel's (``pip install liger-kernel``; used when installed:
ready-made Triton kernels, a few seconds of JIT on a fresh machine) or three small functions compiled
by ``torch.compile`` (Inductor; no extra package, a longer first compile). ``PIXELPILOT_ENGINE_FUSE``
picks: ``liger``, ``inductor``, ``0`` (off); unset: Liger if installed, else Inductor.

Per decoder layer this turns ~50 small kernels into ~25; the weight-bound matrix products are
untouched. The functions compute what transformers' do (fp32 norm statistics, the same rotary
formula), up to the rounding of fused arithmetic.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

__all__ = [
    "active",
    "available",
    "choose_backend",
    "fused_modules",
    "instance_forwards",
    "pack_projections",
    "packed_projections",
]

_compiled: dict[str, Any] = {}
_active: dict[str, Any] = {}
"""The fused functions while ``fused_modules`` is active (the packed MLP's activation reads it)."""


def available() -> bool:
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def active() -> dict[str, Any]:
    """The fused functions while :func:`fused_modules` is active (``rms``, ``add_rms``: the residual
    add and the norm after it, ``rotary``, ``swiglu``), else none."""
    return dict(_active)


def choose_backend(choice: bool | str | None) -> str | None:
    """``liger`` / ``inductor`` / None (unfused) for a setting (None or True: the best available)."""
    if choice is False or str(choice).lower() in {"0", "off", "false", "no"} or not available():
        return None
    choice = "auto" if choice in (None, True) or str(choice).lower() in {"1", "on", "true"} else str(choice)
    if choice in {"auto", "liger"}:
        try:
            import liger_kernel.transformers.functional  # noqa: F401

            return "liger"
        except ImportError:
            if choice == "liger":
                log.warning(
                    "PIXELPILOT_ENGINE_FUSE=liger but liger-kernel is not installed "
                    "(pip install liger-kernel): fusing with torch.compile instead"
                )
    return "inductor"


def _liger() -> dict[str, Any]:
    from liger_kernel.transformers.functional import (
        liger_fused_add_rms_norm,
        liger_rms_norm,
        liger_rope,
        liger_swiglu,
    )

    return {
        "rms": lambda x, w, eps: liger_rms_norm(x, w, eps, 0.0, "llama", False),
        "add_rms": lambda x, r, w, eps: liger_fused_add_rms_norm(x, r, w, eps, 0.0, "llama", False),
        "rotary": liger_rope,
        "swiglu": liger_swiglu,
    }


def _plain() -> dict[str, Any]:
    """The functions as plain torch code: what Inductor compiles (``plain``: uncompiled, for tests)."""
    import torch

    def rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
        return weight * h.to(dtype)

    def rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> Any:
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)

        def half(x: torch.Tensor) -> torch.Tensor:
            a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
            return torch.cat((-b, a), dim=-1)

        return (q * cos) + (half(q) * sin), (k * cos) + (half(k) * sin)

    def swiglu(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.silu(g) * u

    def add_rms(x: torch.Tensor, r: torch.Tensor, weight: torch.Tensor, eps: float) -> Any:
        s = r + x
        return rms(s, weight, eps), s

    return {"rms": rms, "rotary": rotary, "swiglu": swiglu, "add_rms": add_rms}


def _functions(backend: str = "inductor") -> dict[str, Any]:
    if backend == "liger":
        return _liger()
    if backend == "plain":
        return _plain()
    if _compiled:
        return _compiled
    import torch

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for name, fn in _plain().items():
        _compiled[name] = torch.compile(fn, dynamic=True)
    return _compiled


@contextlib.contextmanager
def fused_modules(model: Any, backend: str | None = "inductor") -> Iterator[None]:
    """While active, the text decoder of this Qwen3-VL uses the fused functions (none when ``backend``
    is empty: the engine's fusion switched off)."""
    if not backend:
        yield
        return
    import importlib

    mod = importlib.import_module(type(model.model.language_model).__module__)
    norm_cls, mlp_cls = getattr(mod, "Qwen3VLTextRMSNorm", None), getattr(mod, "Qwen3VLTextMLP", None)
    act = getattr(model.config.text_config, "hidden_act", "silu")
    if norm_cls is None or mlp_cls is None or not hasattr(mod, "apply_rotary_pos_emb") or act != "silu":
        yield  # another transformers layout: run unfused
        return
    f = _functions(backend)

    def norm_forward(self: Any, hidden_states: Any) -> Any:
        return f["rms"](hidden_states, self.weight, self.variance_epsilon)

    def mlp_forward(self: Any, x: Any) -> Any:
        return self.down_proj(f["swiglu"](self.gate_proj(x), self.up_proj(x)))

    def rotary(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> Any:
        assert unsqueeze_dim == 1
        return f["rotary"](q, k, cos, sin)

    saved = (norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb)
    norm_cls.forward, mlp_cls.forward = norm_forward, mlp_forward
    mod.apply_rotary_pos_emb = rotary  # type: ignore[attr-defined]
    _active.update(f)
    try:
        yield
    finally:
        _active.clear()
        norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb = saved  # type: ignore[attr-defined]


_PACKS = (
    ("self_attn", ("q_proj", "k_proj", "v_proj"), "_pp_qkv"),
    ("mlp", ("gate_proj", "up_proj"), "_pp_gate_up"),
)


def pack_projections(model: Any) -> int:
    """Once per model: in each text decoder layer, the query/key/value projections' weights become
    row slices of one tensor, and the MLP's gate/up weights of another (same values, no extra memory),
    so :func:`packed_projections` can compute each group as one matrix product. In a decode pass every
    product is a matrix-vector product bound by its launch and tail, not its bytes: 5 of a layer's 7
    become 2. Layers whose projections are not plain bias-free ``nn.Linear`` stay as they are. Returns
    the groups packed."""
    import torch

    packed = 0
    for layer in getattr(model.model.language_model, "layers", []):
        for owner_name, names, attr in _PACKS:
            owner = getattr(layer, owner_name, None)
            if owner is None or attr in owner.__dict__:
                continue
            mods = [getattr(owner, n, None) for n in names]
            if not all(type(m) is torch.nn.Linear and m.bias is None for m in mods):
                continue
            weights = [m.weight for m in mods]  # type: ignore[union-attr]
            if len({(w.dtype, w.device, w.shape[1], type(w.data)) for w in weights}) != 1:
                continue
            with torch.no_grad():
                whole = torch.cat([w.data for w in weights])
                start = 0
                for w in weights:
                    w.data = whole[start : start + w.shape[0]]
                    start += w.shape[0]
            owner.__dict__[attr] = (whole, [w.shape[0] for w in weights])
            packed += 1
    return packed


@contextlib.contextmanager
def packed_projections(model: Any) -> Iterator[None]:
    """While active, the layers :func:`pack_projections` packed compute q/k/v with one matrix product
    and gate/up with another (the modules' own forwards are back afterwards)."""
    forwards: list[tuple[Any, Any]] = []
    for layer in getattr(model.model.language_model, "layers", []):
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        qkv = getattr(attn, "__dict__", {}).get("_pp_qkv")
        if qkv is not None:
            mods = (attn.q_proj, attn.k_proj, attn.v_proj)  # type: ignore[union-attr]
            forwards += zip(mods, _qkv_forwards(*qkv), strict=True)
        gate_up = getattr(mlp, "__dict__", {}).get("_pp_gate_up")
        if gate_up is not None:
            forwards.append((mlp, _mlp_forward(mlp, gate_up[0])))
    with instance_forwards(forwards):
        yield


@contextlib.contextmanager
def instance_forwards(forwards: list[tuple[Any, Any]]) -> Iterator[None]:
    """While active, each module of ``forwards`` runs its function as its own ``forward`` (set on the
    instance); the class's forward is back afterwards."""
    for module, fn in forwards:
        module.forward = fn
    try:
        yield
    finally:
        for module, _ in forwards:
            module.__dict__.pop("forward", None)


def _qkv_forwards(whole: Any, sizes: list[int]) -> tuple[Any, Any, Any]:
    """q/k/v forwards sharing one product: transformers' attention calls q, k, v in turn on the same
    hidden states; the first computes all three, the others take their columns (any other order or
    input computes afresh: never a stale result)."""
    from torch.nn.functional import linear

    nq, nk, _ = sizes
    held: dict[str, Any] = {}

    def product(x: Any) -> Any:
        if held.get("x") is not x:
            held["x"], held["out"] = x, linear(x, whole)
        return held["out"]

    def q(x: Any) -> Any:
        held.clear()
        return product(x)[..., :nq]

    def k(x: Any) -> Any:
        return product(x)[..., nq : nq + nk]

    def v(x: Any) -> Any:
        out = product(x)[..., nq + nk :]
        held.clear()
        return out

    return q, k, v


def _mlp_forward(mlp: Any, whole: Any) -> Any:
    from torch.nn.functional import linear

    def forward(x: Any) -> Any:
        gate, up = linear(x, whole).chunk(2, dim=-1)
        swiglu = _active.get("swiglu")  # fused_modules is active only for a SiLU model
        return mlp.down_proj(swiglu(gate, up) if swiglu is not None else mlp.act_fn(gate) * up)

    return forward
