"""Weight-only int8 for the language model's linear layers: half the weight memory of bf16.

Each ``nn.Linear`` of the text decoder becomes :class:`Int8Linear`: int8 weights with one scale per
output row (symmetric, absmax / 127), dequantised one layer at a time for the
matmul (the activations stay in the model's dtype): it saves memory, not time. The vision tower and ``lm_head`` stay as they are.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Int8Linear", "quantize_int8"]


def _module() -> Any:
    import torch

    class Int8Linear(torch.nn.Module):
        def __init__(self, linear: torch.nn.Linear) -> None:
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            self.weight_int8: torch.Tensor
            self.scale: torch.Tensor
            self.register_buffer("weight_int8", torch.round(w / scale[:, None]).to(torch.int8))
            self.register_buffer("scale", scale.to(linear.weight.dtype))
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # dequantise this layer's weight for the matmul: only one layer's bf16 copy exists at a
            # time. (torch._weight_int8pack_mm was measured 25x slower than bf16 on an H100.)
            w = self.weight_int8.to(x.dtype) * self.scale[:, None]
            return torch.nn.functional.linear(x, w, self.bias)

    return Int8Linear


Int8Linear: Any = None


def quantize_int8(model: Any) -> int:
    """Replace the text decoder's linear layers in place; returns how many were replaced."""
    import torch

    global Int8Linear
    if Int8Linear is None:
        Int8Linear = _module()
    decoder = model.model.language_model
    n = 0
    for parent in list(decoder.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, Int8Linear(child))
                n += 1
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return n
