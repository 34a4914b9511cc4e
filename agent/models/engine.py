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

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .engine_inputs import Grid, PromptInputs
from .grammar import Grammars, ReplyMatcher

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
        self.lm, self.head = inner.language_model, model.lm_head
        tcfg = model.config.text_config
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.inputs = PromptInputs(model.config, processor, self.device, self.dtype)
        self.image_token = self.inputs.image_token
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
        self.grammars = Grammars(self.tokenizer, int(tcfg.vocab_size), self._eos)
        self.warmup_s = 0.0
        self.graph_error: str | None = None
        self.profiling = False
        """Benchmarks: wait for each forward pass to time it (``stats``)."""
        self.stats: dict[str, float] = {"mask_ms": 0.0, "pass_ms": 0.0}
        self.last_grids: list[Grid] = []

    def _eos_ids(self) -> set[int]:
        gc = getattr(self.model, "generation_config", None)
        ids = getattr(gc, "eos_token_id", None) if gc is not None else None
        if ids is None:
            ids = self.tokenizer.eos_token_id
        return set(ids if isinstance(ids, list) else [ids]) - {None}

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
        pos3, _ = self.inputs.rope_positions(ids, grids)
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
                x, grid = self.inputs.pixels(prep["images"][k], h, w)
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
            g = self._graph(size, self._view(start + size))
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

    def _view(self, end: int) -> int:
        """How much of the cache a graph attends to when it writes up to ``end``: a bucket."""
        return min(self.max_len, -(-end // VIEW_STEP) * VIEW_STEP)

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
        prep = self.inputs.prepare(messages, tools, size)
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
            c = self.grammars.matcher(grammar, self.device) if grammar is not None else None
            if c is not None:
                max_new_tokens = c.budget(max_new_tokens)
            out: list[int] = []
            passes, jumped, finish = 1, 0, "length"
            while len(out) < max_new_tokens:
                if c is not None:
                    if c.terminated:
                        finish = "stop"
                        break
                    tm = time.perf_counter()
                    c.mask(logits)
                    self.stats["mask_ms"] += (time.perf_counter() - tm) * 1000
                best = int(torch.argmax(logits[-1]))  # waits for the GPU
                if forced is not None and len(out) < len(forced):
                    token = forced[len(out)]  # benchmarks: same work, chosen tokens
                elif c is not None and c.must_start_call(len(out), max_new_tokens):
                    token = c.call_id
                else:
                    token = best
                out.append(token)
                if c is None:
                    if token in self._eos:
                        finish = "stop"
                        break
                    run = [token]
                else:
                    c.accept(token)
                    if c.terminated:
                        finish = "stop"
                        break
                    extra = self._jump(c, out, forced, max_new_tokens)
                    jumped += len(extra)
                    run = [token, *extra]
                    ends = c.only_end() if len(out) < max_new_tokens else []
                    if ends:  # only the end can follow: append it, skip the pass that would choose it
                        end = forced[len(out)] if forced is not None and len(out) < len(forced) else ends[0]
                        out.append(end)
                        c.accept(end)
                        jumped += 1
                        finish = "stop"
                        break
                logits, n = self._feed(run)
                passes += n
            if self.device.type == "cuda":
                torch.cuda.synchronize()
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

    def _jump(
        self, c: ReplyMatcher, out: list[int], forced: list[int] | None, max_new_tokens: int
    ) -> list[int]:
        """Append what the grammar forces next to ``out`` (accepted by the matcher); returns it."""
        text = c.forced_text()
        if not text:
            return []
        extra = self.tokenizer.encode(text, add_special_tokens=False)
        if forced is not None:
            extra = forced[len(out) : len(out) + len(extra)]
        extra = extra[: max(0, max_new_tokens - len(out) - 1)]
        for t in extra:
            c.accept(t)
        out += extra
        return extra

    def _feed(self, run: list[int]) -> tuple[Any, int]:
        """Run ``run`` through the model in chunks the graphs know: the last logits, and the passes."""
        passes, logits = 0, None
        while run:
            piece, run = run[: CHUNKS[-1]], run[CHUNKS[-1] :]
            t = time.perf_counter()
            logits = self._chunk(piece)
            if self.profiling and self.device.type == "cuda":
                self.torch.cuda.synchronize()
                self.stats["pass_ms"] += (time.perf_counter() - t) * 1000
            passes += 1
        return logits, passes

    def warm_up(self, prompt_tokens: int = 1600) -> float:
        """Capture the graphs a step with a prompt of about ``prompt_tokens`` uses (a step captures
        what it needs on first use anyway)."""
        if not self.graphs_on:
            return 0.0
        t = time.perf_counter()
        self._held = [(0, None)] * prompt_tokens  # capture as if a prompt of that length were held
        for view in sorted({self._view(prompt_tokens + c) for c in (1, 64, 256)}):
            for size in CHUNKS:
                self._graph(size, view)
        self._held = []  # the warm-up wrote junk where it pretended to be: nothing is held now
        return time.perf_counter() - t
