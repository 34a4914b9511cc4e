"""The local backend: transformers ``Qwen3VLForConditionalGeneration`` + ``AutoProcessor``.

Loads a hub id or a directory; bf16 on CUDA, fp32 on CPU; greedy unless the profile samples. On a
machine without torchvision the stock processor cannot be built (its video processor needs
torchvision), so it falls back to the same processor without the video part.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pixelpilot.agent.errors import ModelError
from pixelpilot.agent.models.base import Reply
from pixelpilot.agent.qwen.profile import QwenProfile
from pixelpilot.agent.qwen.prompts import Prompt

__all__ = ["HUB_IDS", "LocalModel", "load_processor"]

log = logging.getLogger(__name__)

HUB_IDS = {
    "qwen3-vl-2b": "Qwen/Qwen3-VL-2B-Instruct",
    "qwen3-vl-4b": "Qwen/Qwen3-VL-4B-Instruct",
    "qwen3-vl-8b": "Qwen/Qwen3-VL-8B-Instruct",
    "qwen3-vl-2b-thinking": "Qwen/Qwen3-VL-2B-Thinking",
    "qwen3-vl-4b-thinking": "Qwen/Qwen3-VL-4B-Thinking",
    "qwen3-vl-8b-thinking": "Qwen/Qwen3-VL-8B-Thinking",
}


def load_processor(source: str) -> Any:
    """``AutoProcessor``, or on a machine without torchvision the Qwen3-VL processor without video."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(source)
    except (ImportError, AttributeError) as exc:
        log.info("AutoProcessor failed (%s); using the image-only Qwen3-VL processor", exc)
        from transformers import Qwen3VLProcessor

        class _ImageOnlyProcessor(Qwen3VLProcessor):
            @classmethod
            def get_attributes(cls) -> list[str]:
                return ["image_processor", "tokenizer"]

        return _ImageOnlyProcessor.from_pretrained(source)


def _text_size(source: str) -> int | None:
    """Hidden size of the text model, from a local config.json (None when unknown)."""
    cfg = Path(source) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    return int(data.get("text_config", data).get("hidden_size", 0)) or None


class LocalModel:
    """Qwen3-VL in this process. ``name``: a short name (``qwen3-vl-4b``), a hub id or a directory."""

    def __init__(
        self,
        name: str = "qwen3-vl-4b",
        *,
        profile: QwenProfile | None = None,
        device: str | None = None,
        dtype: str | None = None,
        allow_cpu: bool = False,
        engine: bool | None = None,
        constrain: bool = True,
    ) -> None:
        """``engine``: the fast path (``agent.models.engine``); default on with CUDA unless
        ``PIXELPILOT_ENGINE=0``. ``constrain``: with the engine, tool-call replies follow the action
        grammar (needs ``xgrammar``)."""
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError as exc:
            raise ModelError(
                "the local model needs torch and transformers: pip install 'pixelpilot[local]'"
            ) from exc
        source = HUB_IDS.get(name, name)
        self.name = name
        self.source = source
        thinking = "thinking" in name.lower() or "thinking" in source.lower()
        self.profile = profile or QwenProfile(thinking=thinking, max_new_tokens=1024 if thinking else 256)
        cuda = torch.cuda.is_available()
        self.device = device or ("cuda" if cuda else "cpu")
        if self.device == "cpu":
            hidden = _text_size(source) if os.path.isdir(source) else 2048
            if (hidden is None or hidden >= 1024) and not allow_cpu:
                raise ModelError(
                    f"no CUDA device, and {name} is a real-size model: one step takes about a minute on a CPU. "
                    "Use a GPU, serve it with vLLM and pass --model openai:<url>, or pass allow_cpu=True."
                )
        torch_dtype = {
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "fp32": torch.float32,
            "float32": torch.float32,
        }.get(dtype or ("bf16" if self.device.startswith("cuda") else "fp32"))
        try:
            from transformers import Qwen3VLForConditionalGeneration

            self.processor = load_processor(source)
            model = Qwen3VLForConditionalGeneration.from_pretrained(source, dtype=torch_dtype)
            self.model = model.to(self.device).eval()  # type: ignore[arg-type]
        except OSError as exc:
            where = "directory" if os.path.isdir(source) else "hub id"
            raise ModelError(
                f"cannot load the model {source!r} ({where}): {str(exc).splitlines()[0]} — without network access, "
                f"download it elsewhere (huggingface-cli download {source if '/' in source else 'Qwen/Qwen3-VL-4B-Instruct'}) "
                "and pass its directory as the model"
            ) from None
        self._torch = torch
        if engine is None:
            engine = self.device.startswith("cuda") and os.environ.get("PIXELPILOT_ENGINE", "1") != "0"
        self.constrain = constrain
        self.engine = None
        if engine:
            from pixelpilot.agent.models.engine import Engine

            self.engine = Engine(self.model, self.processor)
            self.engine.warm_up()  # capture the decode graphs now, not in the first step

    def warm_up(self, screen: tuple[int, int], space: str = "computer_use") -> float:
        """Prepare for a run on screenshots of ``screen`` (width, height) with the ``space`` tool, so
        its first step pays no start-up cost: with the engine, the vision tower's graph for that size,
        the action grammar compiled (xgrammar reads the vocabulary once), the chat template, and the
        system prompt with the tool's schema in the cache — three warm-up steps on blank screenshots
        (the last two meet a first step's prefill shape: its graph is captured). Returns the seconds
        taken; without the engine, nothing to do."""
        if self.engine is None:
            return 0.0
        from PIL import Image

        from pixelpilot.agent.qwen.prompts import loop_prompt
        from pixelpilot.tools.spaces import get_space

        t = time.perf_counter()
        w, h = int(screen[0]), int(screen[1])
        eng, size = self.engine, dict(self.profile.image_size)
        rh, rw = eng.inputs.image_size(w, h, size)
        p = self.profile
        pictures = p.history_max if p.history == "blocks" else p.history_images + 1
        # room for the longest prompt the history makes (its pictures, ~300 tokens of text a step):
        # a cache that grows mid-run captures its graphs again
        eng.reserve(pictures * (rh // 32) * (rw // 32 + 1) + 300 * 2 * pictures + 4096)
        eng.warm_up(screens=((w, h),), size=size)
        for shade in (255, 128, 0):  # a new picture each: the last two prefill from its start
            picture = Image.new("RGB", (w, h), (shade, shade, shade))
            self._engine_generate(loop_prompt(get_space(space), "Warm up.", [], picture, self.profile), 1)
        return time.perf_counter() - t

    def inputs(self, prompt: Prompt) -> Any:
        """The processor's tensors for ``prompt`` (chat template, image budget) on the model's device:
        what ``generate`` feeds transformers' ``generate``."""
        return self.processor.apply_chat_template(
            prompt.messages,
            tools=prompt.tools,
            tokenize=True,
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"size": dict(self.profile.image_size)},
        ).to(self.device)

    def _grammar(self, prompt: Prompt) -> str | None:
        if not self.constrain or prompt.space is None or prompt.kind not in ("act", "loop"):
            return None
        try:
            import xgrammar  # noqa: F401
        except ImportError:
            log.warning("constrained decoding needs xgrammar (pip install xgrammar); decoding unconstrained")
            self.constrain = False
            return None
        from pixelpilot.agent.qwen.constrain import tool_call_grammar
        from pixelpilot.tools.spaces import get_space

        return tool_call_grammar(get_space(prompt.space))

    def _engine_generate(self, prompt: Prompt, max_new_tokens: int | None) -> Reply:
        assert self.engine is not None
        out = self.engine.generate(
            prompt.messages,
            tools=prompt.tools,
            size=dict(self.profile.image_size),
            max_new_tokens=max_new_tokens or self.profile.max_new_tokens,
            grammar=self._grammar(prompt),
        )
        grids = self.engine.last_grids
        return Reply(
            text=out.text,
            tokens_in=out.tokens_in,
            tokens_out=len(out.tokens),
            timings={
                "preprocess": out.timings["preprocess"],
                "prefill": out.timings["prefill"],
                "decode": out.timings["decode"],
                "generate": out.timings["prefill"] + out.timings["decode"],
                "total": out.timings["total"],
            },
            image_sizes=[(w, h) for (_, _, _, h, w) in grids],
            finish_reason=out.finish_reason,
            extra={
                "engine": {
                    "reused_tokens": out.reused,
                    "jumped_tokens": out.jumped,
                    "passes": out.forward_passes,
                }
            },
        )

    def generate(self, prompt: Prompt, *, max_new_tokens: int | None = None) -> Reply:
        torch = self._torch
        s = self.profile.sampling
        if self.engine is not None and not s.do_sample:
            return self._engine_generate(prompt, max_new_tokens)
        t0 = time.perf_counter()
        inputs = self.inputs(prompt)
        t1 = time.perf_counter()
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens or self.profile.max_new_tokens,
            "do_sample": s.do_sample,
        }
        if s.do_sample:
            kwargs.update(
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,
                repetition_penalty=s.repetition_penalty,
            )
            if s.seed is not None:
                torch.manual_seed(s.seed)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        t2 = time.perf_counter()
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self.processor.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        grid = inputs.get("image_grid_thw")
        sizes = [(int(g[2]) * 16, int(g[1]) * 16) for g in grid] if grid is not None else []
        eos = set(self.model.generation_config.eos_token_id or [])
        finish = "stop" if len(new) and int(new[-1]) in eos else "length"
        return Reply(
            text=text,
            tokens_in=int(inputs["input_ids"].shape[1]),
            tokens_out=int(len(new)),
            timings={"preprocess": (t1 - t0) * 1000, "generate": (t2 - t1) * 1000, "total": (t2 - t0) * 1000},
            image_sizes=sizes,
            finish_reason=finish,
        )

    def close(self) -> None:
        self.model = None
