"""The fast path behind the ``local`` backend: one agent step of Qwen3-VL near what the GPU allows.

What it does that ``generate`` does not:

* **A KV cache that outlives the step.** Keys and values live in fixed buffers; the next prompt is
  compared with what the cache holds (token ids, and each image's content), and only the part after
  the longest common prefix is computed. The system prompt with its tools schema is computed once per
  process; history turns stay in the cache when the prompt grows by appending.
* **Decoding replayed from CUDA graphs** (one per chunk length and cache bucket), captured once: no
  Python or launch cost per layer; inside them the norms, rotary and SwiGLU run as fused kernels
  (``agent.models.fused``: three small functions compiled once, not the whole model).
* **Constrained decoding with jump-forward** (xgrammar, ``agent.qwen.constrain``): the reply can only
  be free text followed by one valid tool call; where the grammar allows a single continuation
  (``{"name": "computer_use", "arguments": {"action": "``), those tokens are appended in one forward
  pass instead of one decode step each.
* **Image preprocessing on the GPU** (resize, normalise, patchify): the CPU only tokenizes.

It calls the transformers model's own modules (vision tower, decoder layers, ``lm_head``) with the
same weights; with constraints off and in fp32 it produces the same tokens as ``generate`` (a CPU test
checks this on the tiny model). Switch it off with ``LocalModel(..., engine=False)`` or
``PIXELPILOT_ENGINE=0``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineOutput"]

CHUNKS = (1, 2, 4, 8, 16, 32, 64)
VIEW_STEP = 512
"""Graphs attend over the cache in steps of this many positions."""
"""Chunk lengths with a captured graph: decode (1) and jump-forward runs (padded up to these)."""


@dataclass
class EngineOutput:
    tokens: list[int]
    text: str
    tokens_in: int
    reused: int
    """Prompt tokens whose keys and values came from the cache."""
    finish_reason: str
    timings: dict[str, float] = field(default_factory=dict)
    forward_passes: int = 0
    jumped: int = 0
    """Tokens appended by jump-forward (no decode step of their own)."""


class _KV:
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


class Engine:
    """Wraps a loaded ``Qwen3VLForConditionalGeneration`` and its processor."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        max_len: int = 8192,
        graphs: bool | None = None,
        fuse: bool | None = None,
    ) -> None:
        import os

        import torch

        from .fused import available

        self.torch = torch
        self.model, self.processor = model, processor
        self.tokenizer = processor.tokenizer
        inner = model.model
        self.lm, self.visual, self.head = inner.language_model, inner.visual, model.lm_head
        cfg = model.config
        tcfg = cfg.text_config
        self.image_token = int(cfg.image_token_id)
        self.vision_start = int(cfg.vision_start_token_id)
        self.merge = int(cfg.vision_config.spatial_merge_size)
        self.patch = int(cfg.vision_config.patch_size)
        self.temporal = int(cfg.vision_config.temporal_patch_size)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        heads = int(getattr(tcfg, "num_key_value_heads", tcfg.num_attention_heads))
        dim = int(getattr(tcfg, "head_dim", None) or tcfg.hidden_size // tcfg.num_attention_heads)
        self._kv_shape = (int(tcfg.num_hidden_layers), heads, dim)
        self.max_len = max_len
        self.kv = _KV(*self._kv_shape, max_len, self.dtype, self.device)
        self.graphs_on = self.device.type == "cuda" if graphs is None else graphs
        if fuse is None:
            fuse = available() and os.environ.get("PIXELPILOT_ENGINE_FUSE", "1") != "0"
        self.fuse = fuse
        """Fused norm/rotary/activation kernels (torch.compile, CUDA) in the decode graphs."""
        self._graphs: dict[int, Any] = {}
        # what the cache holds: token ids and, per position, the digest of the image it belongs to
        self._held: list[tuple[int, str | None]] = []
        self._next_pos = 0  # rope position after the held tokens
        self._eos = self._eos_ids()
        self._grammars: dict[Any, Any] = {}
        self._xgr_tokenizer: Any = None
        ip = processor.image_processor
        mean, std = getattr(ip, "image_mean", [0.5] * 3), getattr(ip, "image_std", [0.5] * 3)
        self._mean = torch.tensor(mean, device=self.device).view(3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(3, 1, 1)
        self.warmup_s = 0.0
        self.graph_error: str | None = None
        self.profiling = False
        """Benchmarks: wait for each forward pass to time it (``stats``)."""
        self.stats: dict[str, float] = {"mask_ms": 0.0, "pass_ms": 0.0}
        self.last_grids: list[tuple[int, int, int, int, int]] = []

    # -- inputs --------------------------------------------------------------------------------------
    def _eos_ids(self) -> set[int]:
        gc = getattr(self.model, "generation_config", None)
        ids = getattr(gc, "eos_token_id", None) if gc is not None else None
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids if isinstance(ids, list) else [ids]) - {None}

    def image_size(self, width: int, height: int, size: dict[str, int] | None) -> tuple[int, int]:
        """(height, width) the processor would resize to (smart_resize with the image budget)."""
        try:  # transformers 5.2x keeps a torchvision-free copy beside the torchvision processor
            from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
        except ImportError:
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        ip = self.processor.image_processor
        budget = dict(getattr(ip, "size", None) or {})
        budget.update(size or {})
        return smart_resize(
            height,
            width,
            factor=self.patch * self.merge,
            min_pixels=int(budget.get("shortest_edge", 56 * 56)),
            max_pixels=int(budget.get("longest_edge", 28 * 28 * 1280)),
        )

    def pixels(self, image: Any, height: int, width: int) -> Any:
        """Resize, normalise and patchify one RGB image on the model's device: the processor's
        (grid_t·grid_h·grid_w, 3·2·16·16) layout."""
        torch = self.torch
        x = torch.from_numpy(np.array(image.convert("RGB"))).to(self.device, non_blocking=True)
        x = x.permute(2, 0, 1)[None].float()
        if (x.shape[2], x.shape[3]) != (height, width):
            x = torch.nn.functional.interpolate(
                x, size=(height, width), mode="bicubic", antialias=True, align_corners=False
            )
        x = ((x[0] / 255.0) - self._mean) / self._std  # (3, H, W)
        m, ps, tp = self.merge, self.patch, self.temporal
        gh, gw = height // ps, width // ps
        x = x[None].expand(tp, -1, -1, -1)  # one picture = tp identical frames
        x = x.reshape(1, tp, 3, gh // m, m, ps, gw // m, m, ps)
        x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gh * gw, 3 * tp * ps * ps).to(self.dtype), (1, gh, gw)

    def prepare(
        self, messages: list[dict[str, Any]], tools: Any, size: dict[str, int] | None
    ) -> dict[str, Any]:
        """Token ids (image pads expanded), image pixels on the device, and per-token image digests."""
        text = self.processor.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=True
        )
        images = [
            c["image"]
            for m in messages
            for c in m.get("content", [])
            if isinstance(c, dict) and c.get("type") == "image"
        ]
        pad = self.tokenizer.convert_ids_to_tokens(self.image_token)
        parts = text.split(pad)
        if len(parts) - 1 != len(images):
            raise ValueError(f"the chat template placed {len(parts) - 1} images for {len(images)} given")
        grids, digests = [], []
        for im in images:
            h, w = self.image_size(im.width, im.height, size)
            grids.append((1, h // self.patch, w // self.patch, h, w))
            digests.append(hashlib.sha1(im.tobytes() + f"{im.size}{h}x{w}".encode()).hexdigest())
        ids: list[int] = []
        owner: list[str | None] = []
        for k, part in enumerate(parts):
            piece = self.tokenizer.encode(part, add_special_tokens=False)
            ids += piece
            owner += [None] * len(piece)
            if k < len(images):
                _, gh, gw, _, _ = grids[k]
                n = gh * gw // (self.merge**2)
                ids += [self.image_token] * n
                owner += [digests[k]] * n
        return {"ids": ids, "owner": owner, "images": images, "grids": grids}

    def rope_positions(self, ids: list[int], grids: list[tuple[int, int, int, int, int]]) -> Any:
        """Qwen3-VL's 3-axis positions (3, N): text advances all three axes together; an image's
        tokens take (t, row, col) offsets from where it starts; the text after it resumes at max + 1."""
        torch = self.torch
        out = np.zeros((3, len(ids)), dtype=np.int64)
        pos, i, k = 0, 0, 0
        n = len(ids)
        while i < n:
            if ids[i] == self.image_token:
                _, gh, gw, _, _ = grids[k]
                h, w = gh // self.merge, gw // self.merge
                rows = np.repeat(np.arange(h), w)
                cols = np.tile(np.arange(w), h)
                out[0, i : i + h * w] = pos
                out[1, i : i + h * w] = pos + rows
                out[2, i : i + h * w] = pos + cols
                pos += max(h, w)
                i += h * w
                k += 1
            else:
                out[:, i] = pos
                pos += 1
                i += 1
        return torch.from_numpy(out), pos

    # -- forward passes ------------------------------------------------------------------------------
    def _mask(self, start: int, q: int, kv_len: int) -> Any:
        torch = self.torch
        cols = torch.arange(kv_len, device=self.device)
        rows = torch.arange(start, start + q, device=self.device)[:, None]
        return (cols[None, :] <= rows)[None, None]

    def _forward(
        self,
        embeds: Any,
        positions: Any,
        start: int,
        *,
        visual: tuple[Any, list[Any]] | None = None,
        view: int | None = None,
    ) -> Any:
        """Run the decoder over ``embeds`` written at ``start``…; returns the last hidden state."""
        torch = self.torch
        q = embeds.shape[1]
        self.kv.index[:q].copy_(torch.arange(start, start + q, device=self.device))
        self.kv.view = view
        self.kv.seen = start
        kwargs: dict[str, Any] = {}
        if visual is not None:
            kwargs["visual_pos_masks"], kwargs["deepstack_visual_embeds"] = visual
        out = self.lm(
            inputs_embeds=embeds,
            position_ids=positions.to(self.device)[:, None, :],
            attention_mask=self._mask(start, q, view or self.max_len),
            past_key_values=self.kv,
            use_cache=True,
            **kwargs,
        )
        return out.last_hidden_state

    def _prefill(self, prep: dict[str, Any]) -> tuple[Any, int, dict[str, float]]:
        """Compute what the cache does not hold yet; returns the last position's logits."""
        torch = self.torch
        ids, owner, grids = prep["ids"], prep["owner"], prep["grids"]
        if len(ids) + self.reply_room > self.max_len:
            self._grow(len(ids) + self.reply_room)
        pos3, _ = self.rope_positions(ids, grids)
        common = 0
        for (a, da), b, db in zip(self._held, ids, owner, strict=False):
            if a != b or da != db:
                break
            common += 1
        common = min(common, len(ids) - 1)
        while common > 0 and owner[common] is not None and owner[common - 1] == owner[common]:
            common -= 1  # never split an image: start where it starts
        t0 = time.perf_counter()
        tail = torch.tensor(ids[common:], device=self.device)[None]
        embeds = self.lm.embed_tokens(tail)
        visual = None
        first_image = sum(
            1
            for i in range(common)
            if ids[i] == self.image_token and (i == 0 or ids[i - 1] != self.image_token)
        )
        todo = list(range(first_image, len(grids)))
        if todo:
            pv, thw = [], []
            for k in todo:
                _, gh, gw, h, w = grids[k]
                x, grid = self.pixels(prep["images"][k], h, w)
                pv.append(x)
                thw.append(grid)
            t_pre = time.perf_counter()
            feats = self.model.model.get_image_features(torch.cat(pv), torch.tensor(thw, device=self.device))
            if hasattr(feats, "pooler_output"):
                image_embeds, deep = feats.pooler_output, feats.deepstack_features
            else:
                image_embeds, deep = feats
            image_embeds = torch.cat(list(image_embeds)).to(embeds.dtype)
            deep = [torch.cat(list(d)) if isinstance(d, (list, tuple)) else d for d in deep]
            mask = tail[0] == self.image_token
            embeds = embeds.clone()
            embeds[0, mask] = image_embeds
            visual = (mask[None], [d.to(embeds.dtype) for d in deep])
        else:
            t_pre = time.perf_counter()
        hidden = self._forward(embeds, pos3[:, common:], common, visual=visual, view=len(ids))
        logits = self.head(hidden[:, -1]).float()
        self._held = list(zip(ids, owner, strict=True))
        self._next_pos = int(pos3[:, -1].max()) + 1
        return logits, common, {"images_ms": (t_pre - t0) * 1000}

    def _fused(self) -> Any:
        """Only for what the graphs capture: in the eager prefill, each compiled call's guard checks
        cost more host time (launch-bound) than the fusion saves (measured: 2B prefill 62 → 98 ms)."""
        import contextlib

        from .fused import fused_modules

        return fused_modules(self.model) if self.fuse else contextlib.nullcontext()

    reply_room = 1024
    """Positions kept free after the prompt for the reply."""

    def _grow(self, need: int) -> None:
        """A longer prompt than the cache holds: a bigger cache (and new graphs, captured on use)."""
        new = -(-need // 4096) * 4096
        log.info("engine cache grows from %d to %d positions", self.max_len, new)
        self._graphs.clear()
        self.kv = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
        self.max_len = new
        self.kv = _KV(*self._kv_shape, new, self.dtype, self.device)
        self._held = []

    def _chunk(self, tokens: list[int]) -> Any:
        """Append ``tokens`` (text) after what the cache holds; returns the last token's logits."""
        torch = self.torch
        q = len(tokens)
        start = len(self._held)
        if start + q > self.max_len:
            raise ValueError("the reply outgrew the engine's cache")
        size = next((c for c in CHUNKS if c >= q), None)
        g = None
        if size is not None and self.graphs_on:
            # attend over a bucket of the cache, not all of it: the keys and values copied per layer
            # (sdpa with a mask expands grouped heads) grow with the length attended
            view = min(self.max_len, -(-(start + size) // VIEW_STEP) * VIEW_STEP)
            g = self._graph(size, view)
        if g is None:
            ids = torch.tensor(tokens, device=self.device)[None]
            pos = torch.arange(self._next_pos, self._next_pos + q)[None].expand(3, -1)
            hidden = self._forward(self.lm.embed_tokens(ids), pos, start)
            logits = self.head(hidden[:, -1]).float()
        else:
            padded = tokens + [tokens[-1]] * (size - q)  # padding writes past the end: overwritten later
            g["ids"].copy_(torch.tensor(padded, dtype=torch.long), non_blocking=True)
            g["start"].fill_(start)
            g["pos"].fill_(self._next_pos)
            g["graph"].replay()
            logits = g["logits"][q - 1 : q]
        self._held += [(t, None) for t in tokens]
        self._next_pos += q
        return logits

    def _graph(self, size: int, view: int) -> dict[str, Any] | None:
        if (size, view) in self._graphs:
            return self._graphs[(size, view)]
        try:
            with (
                self.torch.inference_mode(),
                self._fused(),
            ):  # no autograd history may hold the warm-up's tensors
                return self._capture(size, view)
        except Exception as exc:  # a model whose forward cannot be captured still runs, eagerly
            log.warning("CUDA graph capture failed (%s); decoding without graphs", exc)
            self.graphs_on = False
            self.graph_error = f"{type(exc).__name__}: {exc}"
            return None

    def _capture(self, size: int, view: int) -> dict[str, Any]:
        torch = self.torch
        t0 = time.perf_counter()
        ids = torch.zeros(size, dtype=torch.long, device=self.device)
        start = torch.zeros((), dtype=torch.long, device=self.device)
        pos = torch.zeros((), dtype=torch.long, device=self.device)
        offs = torch.arange(size, device=self.device)
        cols = torch.arange(view, device=self.device)

        def step() -> Any:
            self.kv.index[:size].copy_(start + offs)
            self.kv.view = view
            mask = (cols[None, :] <= (start + offs)[:, None])[None, None]
            p = (pos + offs)[None, None, :].expand(3, 1, size)
            out = self.lm(
                inputs_embeds=self.lm.embed_tokens(ids[None]),
                position_ids=p,
                attention_mask=mask,
                past_key_values=self.kv,
                use_cache=True,
            )
            return self.head(out.last_hidden_state[0]).float()

        # warm up on a side stream (allocator, cuBLAS handles), then capture; the cache's buffers are
        # written by the warm-up at positions the next real forward overwrites
        start.fill_(len(self._held))
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        pool = next(iter(self._graphs.values()))["graph"].pool() if self._graphs else None
        with torch.cuda.graph(graph, pool=pool):
            logits = step()
        # every tensor the graph reads must outlive it: the graph holds addresses, not references
        self._graphs[(size, view)] = {
            "graph": graph,
            "ids": ids,
            "start": start,
            "pos": pos,
            "logits": logits,
            "keep": (offs, cols),
        }
        self.warmup_s += time.perf_counter() - t0
        return self._graphs[(size, view)]

    # -- generation ----------------------------------------------------------------------------------
    def _matcher(self, grammar: str | None) -> Any:
        if grammar is None:
            return None
        import xgrammar as xgr

        if self._xgr_tokenizer is None:
            self._xgr_tokenizer = xgr.TokenizerInfo.from_huggingface(
                self.tokenizer,
                vocab_size=int(self.model.config.text_config.vocab_size),
                stop_token_ids=sorted(self._eos),
            )
            self._compiler = xgr.GrammarCompiler(self._xgr_tokenizer)
        if grammar not in self._grammars:
            self._grammars[grammar] = self._compiler.compile_grammar(grammar)
        return xgr.GrammarMatcher(self._grammars[grammar])

    def generate(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: Any = None,
        size: dict[str, int] | None = None,
        max_new_tokens: int = 256,
        grammar: str | None = None,
        forced: list[int] | None = None,
    ) -> EngineOutput:
        """Greedy reply to a chat. ``grammar``: xgrammar EBNF the reply must match (with jump-forward).
        ``forced``: benchmarks only — pick these tokens instead of the argmax (the work is unchanged)."""
        t0 = time.perf_counter()
        prep = self.prepare(messages, tools, size)
        return self.generate_prepared(
            prep, max_new_tokens=max_new_tokens, grammar=grammar, forced=forced, started=t0
        )

    def generate_prepared(
        self,
        prep: dict[str, Any],
        *,
        max_new_tokens: int = 256,
        grammar: str | None = None,
        forced: list[int] | None = None,
        started: float | None = None,
    ) -> EngineOutput:
        """``generate`` for inputs made by ``prepare`` (or laid out the same way by a benchmark)."""
        torch = self.torch
        t0 = started if started is not None else time.perf_counter()
        with torch.inference_mode():
            self.last_grids = prep["grids"]
            t1 = time.perf_counter()
            logits, reused, info = self._prefill(prep)
            t2 = time.perf_counter()
            matcher = self._matcher(grammar)
            out: list[int] = []
            passes, jumped, finish = 1, 0, "length"
            bitmask = None
            in_call = True
            if matcher is not None:
                import xgrammar as xgr

                from ..qwen.constrain import RESERVE

                bitmask = xgr.allocate_token_bitmask(1, self._xgr_tokenizer.vocab_size)
                on_device = bitmask.to(self.device)
                if self.device.type == "cuda":
                    bitmask = bitmask.pin_memory()
                # a budget that always fits a whole call after the free text
                max_new_tokens = max(max_new_tokens, RESERVE + 16)
                in_call = False
                call_id = self.tokenizer.convert_tokens_to_ids("<tool_call>")
            while len(out) < max_new_tokens:
                if matcher is not None:
                    if matcher.is_terminated():
                        finish = "stop"
                        break
                    tm = time.perf_counter()
                    matcher.fill_next_token_bitmask(bitmask)
                    on_device.copy_(bitmask, non_blocking=True)
                    xgr.apply_token_bitmask_inplace(logits, on_device)
                    self.stats["mask_ms"] += (time.perf_counter() - tm) * 1000
                best = int(torch.argmax(logits[-1]))  # waits for the GPU
                if forced is not None and len(out) < len(forced):
                    token = forced[len(out)]  # benchmarks: same work, chosen tokens
                elif not in_call and len(out) >= max_new_tokens - RESERVE and _allowed(bitmask, call_id):
                    token = call_id  # free text ran long: the call starts now, while it still fits
                else:
                    token = best
                if matcher is not None and token == call_id:
                    in_call = True
                out.append(token)
                if matcher is not None:
                    if not matcher.accept_token(token):
                        raise RuntimeError(f"the grammar refused token {token} (engine bug)")
                    if matcher.is_terminated():
                        finish = "stop"
                        break
                elif token in self._eos:
                    finish = "stop"
                    break
                run = [token]
                if matcher is not None:
                    jump = matcher.find_jump_forward_string()
                    if jump:
                        extra = self.tokenizer.encode(jump, add_special_tokens=False)
                        if forced is not None:
                            extra = forced[len(out) : len(out) + len(extra)]
                        room = max_new_tokens - len(out)
                        extra = extra[: max(0, room - 1)]
                        for t in extra:
                            if not matcher.accept_token(t):
                                raise RuntimeError("jump-forward tokens refused by the grammar (engine bug)")
                        out += extra
                        run += extra
                        jumped += len(extra)
                    if matcher.is_completed() and len(out) < max_new_tokens:
                        # the call is complete and only the end can follow: append it, skip the pass
                        # whose logits would only have chosen it
                        matcher.fill_next_token_bitmask(bitmask)
                        stops = [t for t in self._eos if _allowed(bitmask, t)]
                        if stops and _only(bitmask, stops):
                            end = (
                                forced[len(out)]
                                if forced is not None and len(out) < len(forced)
                                else stops[0]
                            )
                            out.append(end)
                            matcher.accept_token(end)
                            jumped += 1
                            finish = "stop"
                            break
                while run:  # feed in chunks the graphs know
                    piece, run = run[: CHUNKS[-1]], run[CHUNKS[-1] :]
                    tc = time.perf_counter()
                    logits = self._chunk(piece)
                    if self.profiling and self.device.type == "cuda":
                        torch.cuda.synchronize()
                        self.stats["pass_ms"] += (time.perf_counter() - tc) * 1000
                    passes += 1
            torch.cuda.synchronize() if self.device.type == "cuda" else None
            t3 = time.perf_counter()
        text = self.tokenizer.decode(out, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return EngineOutput(
            tokens=out,
            text=text,
            tokens_in=len(prep["ids"]),
            reused=reused,
            finish_reason=finish,
            timings={
                "preprocess": (t1 - t0) * 1000,
                "prefill": (t2 - t1) * 1000,
                "decode": (t3 - t2) * 1000,
                "total": (t3 - t0) * 1000,
                **info,
            },
            forward_passes=passes,
            jumped=jumped,
        )

    def warm_up(self, prompt_tokens: int = 1600) -> float:
        """Capture the graphs a step with a prompt of about ``prompt_tokens`` uses (a step captures
        what it needs on first use anyway)."""
        if not self.graphs_on:
            return 0.0
        t = time.perf_counter()
        held, self._held = self._held, [(0, None)] * prompt_tokens
        views = {min(self.max_len, -(-(prompt_tokens + c) // VIEW_STEP) * VIEW_STEP) for c in (1, 64, 256)}
        for view in sorted(views):
            for size in CHUNKS:
                self._graph(size, view)
        self._held = []  # the warm-up wrote junk where it pretended to be: nothing is held now
        del held
        return time.perf_counter() - t


def _allowed(bitmask: Any, token: int) -> bool:
    return bool((int(bitmask[0, token // 32]) >> (token % 32)) & 1)


def _only(bitmask: Any, tokens: list[int]) -> bool:
    """Whether the bitmask allows exactly ``tokens``."""
    import torch

    bits = bitmask[0].clone()
    for t in tokens:
        bits[t // 32] &= ~(1 << (t % 32))
    return not bool(torch.any(bits != 0))
