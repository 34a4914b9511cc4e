"""The fast path behind the ``local`` backend: one agent step of Qwen3-VL near what the GPU allows.

What it does that ``generate`` does not:

* **A KV cache that outlives the step.** Keys and values live in fixed buffers; the next prompt is
  compared with what the cache holds (token ids, and each image's content), and only the part after
  the longest common prefix is computed. The system prompt with its tools schema is computed once per
  process; history turns stay in the cache when the prompt grows by appending. The vision features
  of the last few screenshots are kept by picture digest: when the history window slides and the
  older screenshots move, they are prefilled again but not sent through the vision tower.
* **Everything replayed from CUDA graphs**, captured once: the vision tower (``engine_vision``, one graph per image
  grid), the prefill (its tail padded to a multiple of ``PREFILL_STEP``; one graph per padded length,
  image tokens and cache bucket) and decoding (one per chunk length and cache bucket): no Python or
  launch cost per layer; inside them the norms (joined to the residual adds), rotary and SwiGLU run as
  fused kernels (``agent.models.fused``: Liger-Kernel's Triton kernels, or small torch.compile'd
  functions). With the Triton attention on (``agent.models.kernels``), the text decoder runs in the
  engine's own loop over the model's modules (``kernels.decoder_forward``: no mask, no cache buckets).
* **Constrained decoding with jump-forward** (xgrammar, ``agent.qwen.constrain``): the reply can only
  be free text followed by one valid tool call; where the grammar allows a single continuation
  (``{"name": "computer_use", "arguments": {"action": "``), those tokens are appended in one forward
  pass instead of one decode step each.
* **Image preprocessing on the GPU** (resize, normalise, patchify): the CPU only tokenizes.

It calls the transformers model's own modules and weights (vision tower, the decoder layers' norms
and projections, ``lm_head``); with constraints off and in fp32 it produces the same tokens as ``generate`` (a CPU test
checks this on the tiny model). Switch it off with ``LocalModel(..., engine=False)`` or
``PIXELPILOT_ENGINE=0``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pixelpilot.agent.models.engine_cache import KVCache, capture_graph, view_bucket
from pixelpilot.agent.models.engine_inputs import Grid, PromptInputs, stop_ids
from pixelpilot.agent.models.engine_vision import VisionTower, index_deepstack
from pixelpilot.agent.models.grammar import Grammars, ReplyMatcher
from pixelpilot.agent.models.kernels import decoder_forward

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineOutput"]

CHUNKS = (1, 2, 4, 8, 16, 32, 64)
"""Chunk lengths with a captured graph: decode (1) and jump-forward runs (padded up to these)."""
PREFILL_STEP = 128
"""Prefill tails are padded up to a multiple of this many tokens (one graph per padded length)."""
MAX_PREFILL_GRAPHS = 24
"""Prefill graphs kept (least recently used dropped first)."""


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


class Engine:
    """Wraps a loaded ``Qwen3VLForConditionalGeneration`` and its processor."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        max_len: int = 8192,
        graphs: bool | None = None,
        fuse: bool | str | None = None,
        kernels: bool | None = None,
    ) -> None:

        import torch

        from pixelpilot.agent.models.fused import choose_backend

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
        self.kv = KVCache(*self._kv_shape, max_len, self.dtype, self.device)
        self.graphs_on = self.device.type == "cuda" if graphs is None else graphs
        self.fuse = choose_backend(os.environ.get("PIXELPILOT_ENGINE_FUSE") if fuse is None else fuse)
        """Fused norm/rotary/activation kernels (torch.compile, CUDA) in the decode graphs."""
        from pixelpilot.agent.models.fused import pack_projections

        self.packed = os.environ.get("PIXELPILOT_ENGINE_PACK", "1") != "0" and pack_projections(model) > 0
        """Each layer's q/k/v and gate/up products as one each (``PIXELPILOT_ENGINE_PACK=0``: apart)."""
        from pixelpilot.agent.models import kernels as triton_kernels

        self.kernels, self.kernels_error = triton_kernels.choose(kernels, tcfg, self.dtype, self.device)
        """Attention in Triton over the filled part of the cache (``agent.models.kernels``): graphs attend
        over the whole buffer, one per chunk length (``PIXELPILOT_ENGINE_KERNELS=0``: buckets and sdpa);
        ``kernels_error``: why not, when asked for (its start-up self-test failed)."""
        self.decoder = self.kernels and self.packed and triton_kernels.decoder_ready(model)
        """The text decoder in the engine's own loop (``kernels.decoder_forward``), not transformers'."""
        if self.kernels_error:
            log.warning(
                "the engine's Triton attention does not run here (%s): sdpa over cache buckets",
                self.kernels_error,
            )
        self._graphs: dict[tuple[Any, ...], Any] = {}
        self._pool: Any = None
        self._met: set[tuple[Any, ...]] = set()
        self.prefill_graphs = True
        """The prefill replayed from graphs too (off when its capture fails)."""
        self.vision = VisionTower(model, self.device, self._capture)
        # what the cache holds: token ids and, per position, the digest of the image it belongs to
        self._held: list[tuple[int, str | None]] = []
        self._next_pos = 0  # rope position after the held tokens
        self._eos = stop_ids(model, self.tokenizer)
        self.grammars = Grammars(self.tokenizer, int(tcfg.vocab_size), self._eos)
        self.warmup_s = 0.0
        self.captures: list[tuple[str, float]] = []
        """(graph kind, seconds) of each capture, Inductor's or Triton's first compile included."""
        self.graph_error: str | None = None
        self.profiling = False
        """Benchmarks: wait for the prefill and for each forward pass to time them (``stats``)."""
        self.coarse_prefill_views = True
        """Prefill graphs attend over doubling buckets above ``VIEW_WIDE_FROM`` (see ``engine_cache.view_bucket``)."""
        self.coarse_decode_views = True
        """Decode graphs too. Measured on an H200 (benchmarks/results/engine_loop_views_h200.md): the
        1k steps read less cache a pass (2B at 9.5k positions: 80 instead of 90 ms of decode a step)
        but a growing prompt meets a new bucket, and captures 4 graphs, every step: the first 20 loop
        steps took 7.1 s instead of 5.1 s."""
        self.split_prefill = False
        """Benchmarks: wait for the prefill only (its time apart from the decode's, one wait a step;
        waiting after every pass as ``profiling`` does keeps the host's work from overlapping it)."""
        self.stats: dict[str, float] = {}
        self.reset_stats()
        self.last_grids: list[Grid] = []
        index_deepstack(self.lm)

    def reset_stats(self) -> None:
        """Zero the counters: grammar mask and pass time (when profiling), vision tower runs, and
        screenshots whose kept features were used instead."""
        self.stats = {"mask_ms": 0.0, "pass_ms": 0.0, "vision_runs": 0, "vision_kept": 0}

    # -- forward passes ------------------------------------------------------------------------------
    def _prefill(self, prep: dict[str, Any]) -> tuple[Any, int, dict[str, float]]:
        """Compute what the cache does not hold yet; returns the last position's logits.

        The tail after the common prefix is padded up to a multiple of ``PREFILL_STEP`` tokens, so
        one CUDA graph per (padded length, image tokens, cache bucket) replays it — and one per
        image grid the vision tower: a prefill of a screen size seen before launches no kernel from
        Python. Padding sits after the real tokens (causal attention: nothing real sees it) and writes
        cache positions the reply overwrites."""
        torch = self.torch
        ids, owner, grids = prep["ids"], prep["owner"], prep["grids"]
        self.reserve(len(ids))
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
        tail = ids[common:]
        q = len(tail)
        size = -(-q // PREFILL_STEP) * PREFILL_STEP
        at = np.flatnonzero(np.asarray(tail) == self.image_token)
        slot = self._prefill_slot(
            size, len(at), self._view(common + size, coarse=self.coarse_prefill_views), common
        )
        slot["ids"][:q].copy_(torch.tensor(tail), non_blocking=True)
        slot["ids"][q:].fill_(tail[-1])
        pos = torch.empty(3, size, dtype=torch.long)
        pos[:, :q] = pos3[:, common:]
        pos[:, q:] = pos3[:, -1:] + torch.arange(1, size - q + 1)
        slot["pos"].copy_(pos, non_blocking=True)
        slot["start"].fill_(common)
        slot["last"].fill_(q - 1)
        if len(at):
            slot["at"].copy_(torch.from_numpy(at), non_blocking=True)
            # the tail starts at an image's start (never inside one); images are apart by text
            first_image = len(grids) - 1 - int(np.count_nonzero(np.diff(at) > 1))
            off = 0
            for k in range(first_image, len(grids)):
                _, gh, gw, h, w = grids[k]
                image_embeds, deep, kept = self.vision.features(
                    prep["digests"][k],
                    functools.partial(self.inputs.pixels, prep["images"][k], h, w),
                    graphs=self.graphs_on,
                )
                self.stats["vision_kept" if kept else "vision_runs"] += 1
                n = image_embeds.shape[0]
                slot["image"][off : off + n].copy_(image_embeds)
                for buf, d in zip(slot["deep"], deep, strict=True):
                    buf[off : off + n].copy_(d)
                off += n
            if off != len(at):
                raise ValueError(f"{off} image features for {len(at)} image tokens")
        t_pre = time.perf_counter()
        if slot.get("graph") is not None:
            slot["graph"].replay()
            logits = slot["out"]
        else:
            logits = self._prefill_pass(slot)
        self._held = list(zip(ids, owner, strict=True))
        self._next_pos = int(pos3[:, -1].max()) + 1
        return logits, common, {"images_ms": (t_pre - t0) * 1000}

    def _prefill_slot(self, size: int, n_image: int, view: int, start: int) -> dict[str, Any]:
        """Input buffers for a prefill of ``size`` tokens (``n_image`` of them image tokens), and the
        graph that reads them when graphs are on (captured the second time the shape is met; the
        capture writes junk only at cache positions from ``start`` on, which the real pass overwrites)."""
        key = ("prefill", size, n_image, view)
        if key in self._graphs:
            self._graphs[key] = self._graphs.pop(key)  # most recently used last
            return self._graphs[key]
        # a shape met once runs eagerly (a capture costs more than the eager pass); met again, it
        # is the steady state of a run (same screen size, similar prompts): captured
        capture = self.graphs_on and self.prefill_graphs and key in self._met
        self._met.add(key)
        held = [k for k in self._graphs if k[0] == "prefill"]
        for old in held[: max(0, len(held) - MAX_PREFILL_GRAPHS + 1)]:
            del self._graphs[old]  # a long-lived engine meets many prompt lengths: keep the recent ones
        torch, dev = self.torch, self.device
        hidden = int(self.model.config.text_config.hidden_size)
        layers = len(getattr(self.model.config.vision_config, "deepstack_visual_indexes", []) or [])
        slot: dict[str, Any] = {
            "ids": torch.zeros(size, dtype=torch.long, device=dev),
            "pos": torch.zeros(3, size, dtype=torch.long, device=dev),
            "start": torch.full((), start, dtype=torch.long, device=dev),
            "last": torch.zeros(1, dtype=torch.long, device=dev),
            "at": torch.zeros(n_image, dtype=torch.long, device=dev),
            "image": torch.zeros(n_image, hidden, dtype=self.dtype, device=dev),
            "deep": [torch.zeros(n_image, hidden, dtype=self.dtype, device=dev) for _ in range(layers)],
            "offs": torch.arange(size, device=dev),
            "cols": torch.arange(view, device=dev),
            "view": view,
        }
        if capture:
            if self._capture(key, slot, lambda: self._prefill_pass(slot)):
                self._graphs[key] = slot
            else:
                self.prefill_graphs = False
        return slot

    def _prefill_pass(self, s: dict[str, Any]) -> Any:
        """The prefill as fixed-shape tensor work (what a graph captures): embed, put the image
        features at their token positions, run the decoder writing the cache, the last real token's
        logits."""
        size = s["ids"].shape[0]
        embeds = self.lm.embed_tokens(s["ids"][None])
        kwargs: dict[str, Any] = {}
        if s["at"].shape[0]:
            embeds = embeds.index_copy(1, s["at"], s["image"][None].to(embeds.dtype))
            kwargs = {"visual_pos_masks": s["at"], "deepstack_visual_embeds": s["deep"]}
        if self.decoder:
            return decoder_forward(
                self.model, self.kv, embeds, s["pos"][:, None, :], s["start"],
                deep=kwargs.get("deepstack_visual_embeds"), at=s["at"], last=s["last"],
            )  # fmt: skip
        where = s["start"] + s["offs"]
        self.kv.index[:size].copy_(where)
        self.kv.view = s["view"]
        mask = (s["cols"][None, :] <= where[:, None])[None, None]
        with self._attention(s["start"]):
            out = self.lm(
                inputs_embeds=embeds,
                position_ids=s["pos"][:, None, :],
                attention_mask=mask,
                past_key_values=self.kv,
                use_cache=True,
                **kwargs,
            )
        return self.head(out.last_hidden_state[0].index_select(0, s["last"])).float()

    def _attention(self, start: Any) -> Any:
        """What a pass through transformers' decoder runs under: grouped attention (in the Triton
        kernels over the filled cache, whose first ``start`` positions are held), and the packed
        projections."""
        from pixelpilot.agent.models.attention import engine_attention, filled_cache
        from pixelpilot.agent.models.fused import packed_projections

        stack = contextlib.ExitStack()
        stack.enter_context(engine_attention(self.lm.config))
        if self.kernels:
            stack.enter_context(filled_cache(start))
        if self.packed:
            stack.enter_context(packed_projections(self.model))
        return stack

    def _fused(self) -> Any:
        """Only for what the graphs capture: in the eager prefill, each compiled call's guard checks
        cost more host time (launch-bound) than the fusion saves (measured: 2B prefill 62 → 98 ms)."""
        from pixelpilot.agent.models.fused import fused_modules

        return fused_modules(self.model, self.fuse)

    reply_room = 1024
    """Positions kept free after the prompt for the reply."""

    def reserve(self, tokens: int) -> None:
        """Make room for prompts of ``tokens`` tokens (and the reply) now, not when one comes."""
        if tokens + self.reply_room > self.max_len:
            self._grow(tokens + self.reply_room)

    def _grow(self, need: int) -> None:
        """A longer prompt than the cache holds: a cache twice as long (or more), holding what the old
        one held (the prefix stays reusable); graphs attend to the old buffers and are captured anew."""
        new = max(2 * self.max_len, need)
        log.info("engine cache grows from %d to %d positions", self.max_len, new)
        self._graphs.clear()
        self._pool = None
        self.kv = self.kv.grown(new, len(self._held))
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()
        self.max_len = new

    def _chunk(self, tokens: list[int]) -> Any:
        """Append ``tokens`` (text) after what the cache holds; returns the last token's logits.
        Padded up to a chunk length (padding writes past the end: overwritten later); attends over
        a bucket of the cache, not all of it (the keys and values sdpa copies per layer to expand
        grouped heads grow with the length attended)."""
        torch = self.torch
        q = len(tokens)
        start = len(self._held)
        size = next(c for c in CHUNKS if c >= q)
        if start + size > self.max_len:
            size = q  # no room for padding: exactly these tokens, eagerly
            if start + q > self.max_len:
                raise ValueError("the reply outgrew the engine's cache")
        view = self._view(start + size, coarse=self.coarse_decode_views)
        g = self._graph(size, view) if size in CHUNKS else None
        if g is None:
            g = self._decode_slot(size, view)
        # ids, first cache position and rope position in one copy (views of one buffer)
        g["inputs"].copy_(torch.tensor([*tokens, *[tokens[-1]] * (size - q), start, self._next_pos]))
        if g.get("graph") is not None:
            g["graph"].replay()
            logits = g["out"][q - 1 : q]
        else:
            logits = self._decode_pass(g)[q - 1 : q]
        self._held += [(t, None) for t in tokens]
        self._next_pos += q
        return logits

    def _view(self, end: int, *, coarse: bool = False) -> int:
        if self.kernels:
            return self.max_len  # the kernels read only what is filled: one bucket, the whole cache
        return view_bucket(end, self.max_len, coarse=coarse)

    def _graph(self, size: int, view: int) -> dict[str, Any] | None:
        """The decode graph for ``size`` tokens attending to ``view`` cache positions (captured on
        first use), or None when graphs are off or cannot be captured for this model."""
        key = ("decode", size, view)
        if key in self._graphs:
            return self._graphs[key]
        if not self.graphs_on:
            return None
        slot = self._decode_slot(size, view)
        if not self._capture(key, slot, lambda: self._decode_pass(slot)):
            self.graphs_on = False  # a model whose forward cannot be captured still runs, eagerly
            return None
        self._graphs[key] = slot
        return slot

    def _decode_slot(self, size: int, view: int) -> dict[str, Any]:
        torch, dev = self.torch, self.device
        inputs = torch.zeros(size + 2, dtype=torch.long, device=dev)
        inputs[size] = len(self._held)
        return {
            "inputs": inputs,
            "ids": inputs[:size],
            "start": inputs[size],
            "pos": inputs[size + 1],
            "offs": torch.arange(size, device=dev),
            "cols": torch.arange(view, device=dev),
            "view": view,
        }

    def _decode_pass(self, s: dict[str, Any]) -> Any:
        size = s["ids"].shape[0]
        p = (s["pos"] + s["offs"])[None, None, :].expand(3, 1, size)
        if self.decoder:
            return decoder_forward(self.model, self.kv, self.lm.embed_tokens(s["ids"][None]), p, s["start"])
        where = s["start"] + s["offs"]
        self.kv.index[:size].copy_(where)
        self.kv.view = s["view"]
        mask = (s["cols"][None, :] <= where[:, None])[None, None]
        with self._attention(s["start"]):
            out = self.lm(
                inputs_embeds=self.lm.embed_tokens(s["ids"][None]),
                position_ids=p,
                attention_mask=mask,
                past_key_values=self.kv,
                use_cache=True,
            )
        return self.head(out.last_hidden_state[0]).float()

    def _capture(self, key: tuple[Any, ...], slot: dict[str, Any], run: Any) -> bool:
        """Warm ``run`` up on a side stream (allocator, cuBLAS handles), then capture it into a CUDA
        graph sharing one memory pool with the others, put in ``slot`` as ``graph`` and ``out``;
        False when capture fails (the caller then runs eagerly). Every tensor the graph reads must
        outlive it (the graph holds addresses, not references): the slot keeps them beside it."""
        t0 = time.perf_counter()
        try:
            graph, out, self._pool = capture_graph(run, self._pool, self._fused)
        except Exception as exc:
            log.warning("CUDA graph capture of %s failed (%s); running it eagerly", key[0], exc)
            self.graph_error = f"{key[0]}: {type(exc).__name__}: {exc}"
            return False
        finally:
            self.warmup_s += time.perf_counter() - t0
            self.captures.append((str(key[0]), round(time.perf_counter() - t0, 3)))
        slot.update(graph=graph, out=out)
        return True

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
            if (self.profiling or self.split_prefill) and self.device.type == "cuda":
                torch.cuda.synchronize()  # benchmarks: the prefill's own time
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
                elif c is not None and (close := c.closing(len(out), max_new_tokens)) is not None:
                    token = close
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

    def warm_up(
        self,
        prompt_tokens: int = 1600,
        *,
        screens: tuple[tuple[int, int], ...] = (),
        size: dict[str, int] | None = None,
    ) -> float:
        """Capture the graphs a step with a prompt of about ``prompt_tokens`` uses, and the vision
        tower's for screenshots of each of ``screens`` (width, height; resized under the image budget
        ``size``) — a step captures what it needs on first use anyway: done here, the first step of a
        run pays none of it."""
        if not self.graphs_on:
            return 0.0
        t = time.perf_counter()
        with self.torch.inference_mode():
            for w, h in screens:  # a blank picture of each size through the tower: its graph captured
                self.vision(
                    *self.inputs.pixels(np.zeros((h, w, 3), np.uint8), *self.inputs.image_size(w, h, size)),
                    graphs=True,
                )
        self._held = [(0, None)] * prompt_tokens  # capture as if a prompt of that length were held
        for view in sorted(
            {self._view(prompt_tokens + c, coarse=self.coarse_decode_views) for c in (1, 64, 256)}
        ):
            for chunk in CHUNKS:
                self._graph(chunk, view)
        self._held = []  # the warm-up wrote junk where it pretended to be: nothing is held now
        return time.perf_counter() - t
