"""Build a tiny Qwen3-VL offline: tokenizer with Qwen's real special-token ids, processor files, chat
template, and a random or *scripted* model.

A scripted model emits one fixed reply (e.g. an ``Action:`` line and a ``<tool_call>``) for any prompt,
greedy or sampled: every layer's attention and MLP outputs are zeroed, so the last hidden state is
the normalised embedding of the current token, and each token of the reply's chain gets an
orthogonal embedding whose successor's ``lm_head`` row points along it. The rest of the real code path
(processor → generate/vLLM → decode → parse) runs unchanged.

    python -m tests.support.tiny_qwen OUT_DIR [--script 'Action: ...\n<tool_call>\n{...}\n</tool_call>']
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ADDED = [  # Qwen3's added tokens, ids 151643..151668, in order; True = special
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
]
FIRST_ADDED = 151643
VOCAB = 151936
SCRIPT_SLOT = 151000
PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def _byte_chars() -> list[str]:
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs, strict=True))
    return [chr(table[b]) for b in range(256)], [chr(c) for c in cs]  # type: ignore[return-value]


def _spell(text: str) -> str:
    by_byte, _ = _byte_chars()
    return "".join(by_byte[b] for b in text.encode("utf-8"))


def build_tokenizer(out: Path, pieces: list[str]) -> dict[str, int]:
    from tokenizers import Tokenizer, models

    _, order = _byte_chars()
    vocab = {ch: i for i, ch in enumerate(order)}
    piece_ids: dict[str, int] = {}
    for i in range(256, FIRST_ADDED):
        vocab[f"<|filler_{i}|>"] = i
    for k, piece in enumerate(pieces):
        spelled = _spell(piece)
        assert spelled not in vocab, f"script piece {piece!r} is not a distinct token"
        del vocab[f"<|filler_{SCRIPT_SLOT + k}|>"]
        vocab[spelled] = SCRIPT_SLOT + k
        piece_ids[piece] = SCRIPT_SLOT + k
    save_qwen_tokenizer(
        Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False)), out
    )
    return piece_ids


def save_qwen_tokenizer(tok: Any, out: Path) -> None:
    """Give a byte-level BPE Qwen's pipeline (NFC, Qwen2's split regex, byte-level, the Qwen3 added
    tokens at their real ids) and save it as a checkpoint's tokenizer files, with the chat template."""
    from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PAT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    for i, (text, special) in enumerate(ADDED):
        t = AddedToken(text, special=special, normalized=False)
        (tok.add_special_tokens if special else tok.add_tokens)([t])
        assert tok.token_to_id(text) == FIRST_ADDED + i, text
    fast = Qwen2TokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        model_max_length=262144,
        clean_up_tokenization_spaces=False,
    )
    from pixelpilot.agent.qwen.prompts import chat_template

    fast.chat_template = chat_template()
    fast.save_pretrained(out)


def write_processor_files(out: Path) -> None:
    common = {
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Qwen3VLProcessor",
    }
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"longest_edge": 16777216, "shortest_edge": 65536},
                "image_processor_type": "Qwen2VLImageProcessorFast",
                "do_resize": True,
                "do_rescale": True,
                "do_normalize": True,
                "do_convert_rgb": True,
                "resample": 3,
                "rescale_factor": 1 / 255,
                **common,
            },
            indent=2,
        )
    )
    (out / "video_preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"longest_edge": 25165824, "shortest_edge": 4096},
                "video_processor_type": "Qwen3VLVideoProcessor",
                "fps": 2,
                "min_frames": 4,
                "max_frames": 768,
                "do_sample_frames": True,
                **common,
            },
            indent=2,
        )
    )


def config(*, tied: bool) -> object:
    from transformers import Qwen3VLConfig

    return Qwen3VLConfig(
        text_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "vocab_size": VOCAB,
            "max_position_embeddings": 32768,
            "rope_theta": 5_000_000,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "tie_word_embeddings": tied,
            "rope_scaling": {"rope_type": "default", "mrope_section": [6, 5, 5], "mrope_interleaved": True},
            "bos_token_id": FIRST_ADDED,
            "eos_token_id": FIRST_ADDED + 2,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_heads": 2,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": 64,
            "in_channels": 3,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [0, 1],
            "hidden_act": "gelu_pytorch_tanh",
        },
        image_token_id=151655,
        video_token_id=151656,
        vision_start_token_id=151652,
        vision_end_token_id=151653,
        tie_word_embeddings=tied,
    )


def split_script(script: str) -> list[str | int]:
    """'A<tool_call>B</tool_call>' → ['A', 151657, 'B', 151658] (empty pieces dropped)."""
    out: list[str | int] = []
    rest = script
    while rest:
        i = rest.find("<tool_call>")
        j = rest.find("</tool_call>")
        cut = min(x for x in (i, j, len(rest)) if x >= 0)
        if cut > 0:
            out.append(rest[:cut])
        if cut == len(rest):
            break
        if rest.startswith("<tool_call>", cut):
            out.append(151657)
            rest = rest[cut + len("<tool_call>") :]
        else:
            out.append(151658)
            rest = rest[cut + len("</tool_call>") :]
    return out


def build(out: str | Path, script: str | None = None, *, seed: int = 0) -> Path:
    """Build a tiny Qwen3-VL into ``out``: random weights, or scripted to emit ``script``."""
    import torch
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = split_script(script) if script else []
    pieces = [p for p in parts if isinstance(p, str)]
    piece_ids = build_tokenizer(out, pieces)
    write_processor_files(out)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config(tied=not script))
    if script:
        chain = [198] + [piece_ids[p] if isinstance(p, str) else p for p in parts] + [FIRST_ADDED + 2]
        lm = model.model.language_model
        with torch.no_grad():
            for layer in lm.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            emb = lm.embed_tokens.weight
            hidden = emb.shape[1]
            assert len(chain) <= hidden, "script too long for the tiny model"
            emb.mul_(0.01)
            for k, tid in enumerate(chain):
                emb[tid] = 0
                emb[tid, k] = 1.0
            head = model.lm_head.weight
            head.zero_()
            scale = 100.0 / (hidden**0.5)  # RMSNorm turns the unit vector into sqrt(hidden) along its axis
            for k in range(len(chain) - 1):
                head[chain[k + 1], k] = scale
    model.generation_config = GenerationConfig(
        eos_token_id=[FIRST_ADDED + 2, FIRST_ADDED], pad_token_id=FIRST_ADDED, do_sample=False
    )
    model.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--script", default=None, help="the reply to emit (real newlines; use $'...' in bash)")
    args = ap.parse_args(argv)
    print(build(args.out, args.script))
    return 0


if __name__ == "__main__":
    sys.exit(main())
