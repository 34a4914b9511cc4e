"""Qwen's real tokenizer, built from the BPE ranks in dashscope's qwen.tiktoken, checked against what
is known of it: the special and added tokens at their real ids, known encodings, the chat template's
rendering, round trips of every prompt we send."""

from __future__ import annotations

import pytest
from PIL import Image

from pixelpilot.agent.qwen import QwenProfile, act_prompt, loop_prompt, render_text
from pixelpilot.agent.qwen.prompts import HistoryItem, ask_prompt, check_prompt, grounding_prompt
from pixelpilot.tools import COMPUTER_USE, MOBILE_USE
from tests.support.tiny_qwen import ADDED, FIRST_ADDED

IMG = Image.new("RGB", (1280, 800), "white")


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from tests.support.qwen_tokenizer import build_qwen_tokenizer

    return AutoTokenizer.from_pretrained(build_qwen_tokenizer(tmp_path_factory.mktemp("qwen-tok")))


def test_special_and_added_tokens_at_their_real_ids(qwen):
    assert len(qwen) == FIRST_ADDED + len(ADDED) == 151669
    for i, (text, special) in enumerate(ADDED):
        assert qwen.convert_tokens_to_ids(text) == FIRST_ADDED + i
        assert qwen.added_tokens_decoder[FIRST_ADDED + i].special == special, text
    assert qwen.eos_token_id == 151645 and qwen.pad_token_id == 151643
    ids = qwen.encode('<tool_call>\n{"name": "computer_use"}\n</tool_call><|im_end|>')
    assert ids[0] == 151657 and 151658 in ids and ids[-1] == 151645
    kept = qwen.decode(ids, skip_special_tokens=True)
    assert kept.startswith("<tool_call>") and kept.endswith("</tool_call>")  # not special: survives


def test_known_encodings_of_the_real_ranks(qwen):
    """Qwen2's ids for plain text; digits one token each (Qwen's \\p{N} rule, not GPT-4's 1-3)."""
    assert qwen.encode("Hello world") == [9707, 1879]
    assert qwen.encode("Hello, world!") == [9707, 11, 1879, 0]
    assert qwen.encode(" 12345") == [220, 16, 17, 18, 19, 20]
    call = (
        '<tool_call>\n{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [263, 418]}}'
        "\n</tool_call>"
    )
    assert 25 <= len(qwen.encode(call)) <= 45 < len(call.encode())  # ~34 tokens, not one per byte


def _prompts() -> list:  # type: ignore[type-arg]
    history = [
        HistoryItem(IMG, f"Action: step {i}\n<tool_call>\n{{}}\n</tool_call>", f"click {i}") for i in range(9)
    ]
    return [
        act_prompt(COMPUTER_USE, "Öffne die Einstellungen ✓", IMG),
        act_prompt(MOBILE_USE, "打开设置", IMG),
        loop_prompt(COMPUTER_USE, "Log in as alice", history, IMG, QwenProfile()),
        loop_prompt(COMPUTER_USE, "Log in as alice", history, IMG, QwenProfile(history="window")),
        loop_prompt(MOBILE_USE, "Save a note", history, IMG, QwenProfile()),
        grounding_prompt("the blue Save button", IMG),
        ask_prompt("What is the total?", IMG),
        check_prompt("An order confirmation is shown", IMG),
    ]


def test_every_prompt_round_trips_and_the_chat_template_renders_it(qwen):
    for prompt in _prompts():
        text = render_text(prompt)
        ids = qwen.encode(text)
        assert qwen.decode(ids) == text
        assert ids.count(151644) == text.count("<|im_start|>") and ids.count(151652) == len(prompt.images)
        rendered = qwen.apply_chat_template(
            prompt.messages, tools=prompt.tools, tokenize=False, add_generation_prompt=True
        )
        assert rendered == text


def test_prompt_sizes_are_qwens_not_one_token_per_byte(qwen):
    text = render_text(_prompts()[2])
    n = len(qwen.encode(text))
    assert n < len(text.encode()) / 2.5, (n, len(text.encode()))
