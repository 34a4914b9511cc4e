"""The engine's vision tower: one image through Qwen3-VL's vision encoder, replayed from one CUDA
graph per image grid. What the tower computes from the grid alone (interpolation taps, rotary
positions, sequence bounds: host work with syncs no graph can hold) is computed once per grid with
transformers' own ``vision_utils`` and handed to it."""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["MAX_KEPT_FEATURES", "VisionTower", "fewer_kernels", "index_deepstack"]

MAX_KEPT_FEATURES = 8
"""Screenshots whose vision features are kept (least recently used dropped first): a goal loop sends
its last few screenshots again every step, and a screenshot's features do not depend on where in
the prompt it sits."""


class VisionTower:
    def __init__(
        self, model: Any, device: Any, capture: Callable[[tuple[Any, ...], dict[str, Any], Any], bool]
    ):
        """``capture(key, slot, run)``: the engine's graph capture (it puts ``graph`` and ``out`` in
        the slot, or says it could not)."""
        self.model, self.device, self._capture = model, device, capture
        self.graphs_on = True
        """Off once a capture failed: the tower then runs eagerly."""
        self._slots: dict[tuple[int, int, int], dict[str, Any]] = {}
        self._kept: OrderedDict[str, tuple[Any, list[Any]]] = OrderedDict()
        """Features (merged, deepstack) by picture digest (which names the resize too)."""

    def features(
        self, digest: str, pixels: Callable[[], tuple[Any, tuple[int, int, int]]], *, graphs: bool
    ) -> tuple[Any, list[Any], bool]:
        """One picture's features, and whether they were kept from an earlier prompt that held the
        same picture at the same size; else ``pixels()`` goes through the tower (and is kept)."""
        kept = self._kept.get(digest)
        if kept is not None:
            self._kept.move_to_end(digest)
            return (*kept, True)
        x, grid = pixels()
        image_embeds, deep = self(x, grid, graphs=graphs)
        kept = (image_embeds.clone(), [d.clone() for d in deep])  # a graph's outputs are reused
        self._kept[digest] = kept
        while len(self._kept) > MAX_KEPT_FEATURES:
            self._kept.popitem(last=False)
        return (*kept, False)

    def __call__(self, x: Any, grid: tuple[int, int, int], *, graphs: bool) -> tuple[Any, list[Any]]:
        """Merged features and deepstack features of one image (pixels ``x`` on the device)."""
        slot = self._slots.get(grid)
        if slot is None:
            pre = self.constants(grid)
            if pre is None:
                return self._as_the_model_does(x, grid)
            slot = self._slots[grid] = {"x": x.new_empty(x.shape), "pre": pre}
            if (
                graphs
                and self.graphs_on
                and not self._capture(("vision", *grid), slot, lambda: self._pass(slot))
            ):
                self.graphs_on = False
        slot["x"].copy_(x)
        if slot.get("graph") is not None:
            slot["graph"].replay()
            return slot["out"]
        return self._pass(slot)

    def _pass(self, s: dict[str, Any]) -> tuple[Any, list[Any]]:
        grid, constants = s["pre"]
        with fewer_kernels(self.model.model.visual):
            out = self.model.model.visual(s["x"], grid_thw=grid, return_dict=True, **dict(constants))
        return out.pooler_output, list(out.deepstack_features)

    def _as_the_model_does(self, x: Any, grid: tuple[int, int, int]) -> tuple[Any, list[Any]]:
        """A transformers without precomputable vision inputs: ``get_image_features`` (no graph)."""
        import torch

        feats = self.model.model.get_image_features(x, torch.tensor([grid], device=self.device))
        if hasattr(feats, "pooler_output"):
            image_embeds, deep = feats.pooler_output, feats.deepstack_features
        else:
            image_embeds, deep = feats
        return torch.cat(list(image_embeds)), [
            torch.cat(list(d)) if isinstance(d, (list, tuple)) else d for d in deep
        ]

    def constants(self, grid: tuple[int, int, int]) -> tuple[Any, dict[str, Any]] | None:
        """The grid (on the host) and what the tower would compute from it, or None where this
        transformers cannot take them precomputed."""
        import torch

        try:
            from transformers import vision_utils as vu
        except ImportError:
            return None
        visual = self.model.model.visual
        if not hasattr(visual, "num_grid_per_side"):
            return None
        g = torch.tensor([grid])
        try:
            taps, weights = vu.get_vision_interpolation_indices_and_weights(
                g,
                num_grid_per_side=visual.num_grid_per_side,
                mode=visual.interpolation_mode,
                align_corners=visual.interpolation_align_corners,
                spatial_merge_size=visual.config.spatial_merge_size,
            )
            positions = vu.get_vision_position_ids(g, visual.spatial_merge_size)
            bounds, longest = vu.get_vision_attention_seqlens(g, visual.config)
        except (AttributeError, TypeError) as exc:
            log.info("vision inputs not precomputable here (%s): the tower runs as the model does it", exc)
            return None
        flash = "flash" in str(getattr(visual.config, "_attn_implementation", ""))
        return g, {
            "interp_indices": taps.to(self.device),
            "interp_weights": weights.to(self.device, torch.float32 if weights.is_floating_point() else None),
            "position_ids": positions.to(self.device),
            # sdpa splits images by these lengths on the host: keep them there (no sync in a graph)
            "cu_seqlens": bounds.to(self.device) if flash else bounds,
            "max_seqlen": longest,
        }


@contextlib.contextmanager
def fewer_kernels(visual: Any) -> Iterator[None]:
    """While active, the vision tower ``visual`` computes what it does in fewer, larger kernels:
    its patch embedding (a Conv3d whose kernel is its stride: one output per patch) as the matrix
    product it is — cuDNN runs it as an implicit-GEMM convolution, 0.6 ms for a 1280×800 screenshot
    on an H200 — each block's MLP with its tanh GELU in the first product's epilogue (cuBLASLt), and,
    while the engine's fused functions are active (its graph captures), the rotary embedding of
    queries and keys in one kernel: transformers' takes ~12 elementwise kernels a block in float,
    ~3.5 ms a screenshot. Other layouts keep their own forwards."""
    import importlib

    import torch
    from torch.nn.functional import linear

    from pixelpilot.agent.models.fused import active, instance_forwards

    forwards: list[tuple[Any, Any]] = []
    embed = getattr(visual, "patch_embed", None)
    proj = getattr(embed, "proj", None)
    if (
        isinstance(proj, torch.nn.Conv3d)
        and tuple(proj.kernel_size) == tuple(proj.stride)
        and proj.padding
        in (
            0,
            (0, 0, 0),
        )
    ):
        width = proj.weight[0].numel()

        def embed_forward(x: Any, _p: Any = proj, _k: int = width) -> Any:
            w = _p.weight
            return linear(x.reshape(-1, _k).to(w.dtype), w.reshape(w.shape[0], _k), _p.bias)

        forwards.append((embed, embed_forward))
    tanh_gelu = getattr(getattr(visual, "config", None), "hidden_act", None) == "gelu_pytorch_tanh"
    for block in getattr(visual, "blocks", []) if tanh_gelu else []:
        mlp = getattr(block, "mlp", None)
        fc1, fc2 = getattr(mlp, "linear_fc1", None), getattr(mlp, "linear_fc2", None)
        if not (
            isinstance(fc1, torch.nn.Linear) and fc1.bias is not None and isinstance(fc2, torch.nn.Linear)
        ):
            continue

        def mlp_forward(x: Any, _fc1: Any = fc1, _fc2: Any = fc2) -> Any:
            flat = x.reshape(-1, x.shape[-1])
            hidden = torch._addmm_activation(_fc1.bias, flat, _fc1.weight.t(), use_gelu=True)
            return _fc2(hidden).reshape(*x.shape[:-1], -1)

        forwards.append((mlp, mlp_forward))
    module = importlib.import_module(type(visual).__module__)
    original = getattr(module, "apply_rotary_pos_emb_vision", None)
    rotary = active().get("rotary")
    if original is not None and rotary is not None:

        def rotate(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
            """(tokens, heads, dim) queries and keys; cos/sin (tokens, dim), float: as transformers'
            ``apply_rotary_pos_emb_vision`` computes them (in float, cast back)."""
            q4, k4 = q.transpose(0, 1)[None], k.transpose(0, 1)[None]
            q4, k4 = rotary(q4, k4, cos[None].float(), sin[None].float())
            return q4[0].transpose(0, 1).to(q.dtype), k4[0].transpose(0, 1).to(k.dtype)

        module.apply_rotary_pos_emb_vision = rotate  # type: ignore[attr-defined]
    try:
        with instance_forwards(forwards):
            yield
    finally:
        if original is not None:
            module.apply_rotary_pos_emb_vision = original  # type: ignore[attr-defined]


def index_deepstack(lm: Any) -> None:
    """Let the text decoder ``lm`` take the image tokens' positions as indices as well as a boolean
    mask when it adds the vision tower's deepstack features: a mask selects rows through a host sync
    (no graph can hold one), indices through a gather. With a mask (plain ``generate`` on the same
    model) it does what it did. Once per model."""
    import torch

    original = lm._deepstack_process

    def deepstack(hidden: Any, where: Any, embeds: Any) -> Any:
        if where.dtype == torch.bool:
            return original(hidden, where, embeds)
        return hidden.index_add(1, where, embeds[None].to(hidden.dtype))

    if not getattr(original, "_pixelpilot", False):
        deepstack._pixelpilot = True  # type: ignore[attr-defined]
        lm._deepstack_process = deepstack
