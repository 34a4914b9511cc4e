"""Qwen's real tokenizer, built offline: the 151,643 byte-level BPE ranks that Qwen2 to Qwen3 share ship
in the PyPI package ``dashscope`` (``resources/qwen.tiktoken``); this turns them into a ``tokenizers``
fast tokenizer — byte-level BPE, Qwen2's pre-tokenizer regex, NFC, the Qwen3 special and added tokens
at their real ids — saved with the chat template, as a Qwen3-VL checkpoint's tokenizer files are.

Token counts of prompts built with it are Qwen's (the tests' default offline tokenizer makes one token
per byte of text). ``dashscope`` is installed without its dependencies: only this file is read.
"""

from __future__ import annotations

import base64
import importlib.metadata as md
from pathlib import Path

from tests.support.tiny_qwen import FIRST_ADDED, _byte_chars, save_qwen_tokenizer

__all__ = ["build_qwen_tokenizer", "qwen_ranks_path"]


def qwen_ranks_path() -> Path:
    """Where ``dashscope`` keeps ``qwen.tiktoken`` (read without importing the package)."""
    try:
        files = md.files("dashscope") or []
    except md.PackageNotFoundError:
        raise FileNotFoundError(
            "Qwen's BPE ranks come with the PyPI package dashscope: pip install --no-deps dashscope"
        ) from None
    for f in files:
        if str(f).endswith("resources/qwen.tiktoken"):
            return Path(str(f.locate()))
    raise FileNotFoundError("this dashscope has no resources/qwen.tiktoken")


def _ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The BPE's vocab and merges from tiktoken ranks: a token of rank r is the merge of the split of it
    whose halves are both tokens, taken in the order of the ranks (as tiktoken applies them)."""
    by_byte, _ = _byte_chars()  # GPT-2's byte -> printable character table, as ByteLevel makes it

    def text(b: bytes) -> str:
        return "".join(by_byte[x] for x in b)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[int, str, str]] = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        splits = [(tok[:i], tok[i:]) for i in range(1, len(tok)) if tok[:i] in ranks and tok[i:] in ranks]
        splits.sort(key=lambda lr: (ranks[lr[0]], ranks[lr[1]]))
        merges += [(rank, text(left), text(right)) for left, right in splits]
    merges.sort(key=lambda m: m[0])
    return vocab, [(a, b) for _, a, b in merges]


def build_qwen_tokenizer(out: Path) -> Path:
    """Qwen's tokenizer files (tokenizer.json, tokenizer_config.json, chat_template.jinja) in ``out``."""
    from tokenizers import Tokenizer, models

    ranks = _ranks(qwen_ranks_path())
    if len(ranks) != FIRST_ADDED:
        raise ValueError(f"expected {FIRST_ADDED} BPE ranks in qwen.tiktoken, found {len(ranks)}")
    vocab, merges = _vocab_and_merges(ranks)
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False, ignore_merges=False)
    )
    out.mkdir(parents=True, exist_ok=True)
    save_qwen_tokenizer(tok, out)
    return out
