"""Fewer, larger GPU kernels for the engine's decoder: the RMS norms, the rotary embedding and the
MLP's activation product, each compiled once by ``torch.compile`` (Inductor → Triton) with dynamic
shapes, and swapped into the transformers modules only while the engine captures its decode graphs (plain
``generate`` on the same model, and the engine's eager prefill, use transformers' own).

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

__all__ = ["available", "fused_modules"]

_compiled: dict[str, Any] = {}


def available() -> bool:
    try:
        import torch
        import triton  # noqa: F401
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _functions() -> dict[str, Any]:
    if _compiled:
        return _compiled
    import torch

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)

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

    for name, fn in (("rms", rms), ("rotary", rotary), ("swiglu", swiglu)):
        _compiled[name] = torch.compile(fn, dynamic=True)
    return _compiled


@contextlib.contextmanager
def fused_modules(model: Any) -> Iterator[None]:
    """While active, the text decoder of this Qwen3-VL uses the fused functions."""
    import importlib

    mod = importlib.import_module(type(model.model.language_model).__module__)
    norm_cls, mlp_cls = getattr(mod, "Qwen3VLTextRMSNorm", None), getattr(mod, "Qwen3VLTextMLP", None)
    act = getattr(model.config.text_config, "hidden_act", "silu")
    if norm_cls is None or mlp_cls is None or not hasattr(mod, "apply_rotary_pos_emb") or act != "silu":
        yield  # another transformers layout: run unfused
        return
    f = _functions()

    def norm_forward(self: Any, hidden_states: Any) -> Any:
        return f["rms"](hidden_states, self.weight, self.variance_epsilon)

    def mlp_forward(self: Any, x: Any) -> Any:
        return self.down_proj(f["swiglu"](self.gate_proj(x), self.up_proj(x)))

    def rotary(q: Any, k: Any, cos: Any, sin: Any, unsqueeze_dim: int = 1) -> Any:
        assert unsqueeze_dim == 1
        return f["rotary"](q, k, cos, sin)

    saved = (norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb)
    norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb = norm_forward, mlp_forward, rotary
    try:
        yield
    finally:
        norm_cls.forward, mlp_cls.forward, mod.apply_rotary_pos_emb = saved
