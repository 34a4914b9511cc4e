"""Prompts equal the reference strings byte for byte (the model was trained on them)."""

from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent.qwen import HistoryItem, QwenProfile, act_prompt, loop_prompt, render_text
from pixelpilot.agent.qwen.prompts import Prompt, chat_template, history_start
from pixelpilot.tools import COMPUTER_USE, MOBILE_USE

HERE = Path(__file__).parent
IMG = Image.new("RGB", (1280, 800), "white")


def test_chat_template_is_the_verbatim_qwen3_vl_template():
    import hashlib

    data = chat_template().encode()
    assert len(data) == 5292
    assert (
        hashlib.sha256(data).hexdigest() == "3636d0f0bd6bef02654cdffdc447b79cb2cef8ab02cc75267345946291a489e4"
    )


def test_computer_use_prompt_equals_the_cookbook_render():
    reference = (HERE / "cookbook_computer_use_prompt.txt").read_text()
    prompt = act_prompt(COMPUTER_USE, "open the first issue", IMG)
    assert prompt.tools == [COMPUTER_USE.schema()]
    assert render_text(prompt) == reference


def test_inline_tools_system_text_renders_the_same_bytes():
    # the tools block written by our own template (no `tools=`) equals what the chat template makes of `tools=`
    from pixelpilot.agent.qwen.prompts import _system_inline

    reference = (HERE / "cookbook_computer_use_prompt.txt").read_text()
    inline = Prompt(
        "x",
        [
            {
                "role": "system",
                "content": [{"type": "text", "text": _system_inline(COMPUTER_USE, response_format=False)}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "open the first issue"},
                    {"type": "image", "image": IMG},
                ],
            },
        ],
    )
    assert render_text(inline) == reference


def test_mobile_prompt_equals_the_cookbook():
    reference_system = (HERE / "cookbook_mobile_system.txt").read_text()
    history = [HistoryItem(IMG, "...", "I opened the X app from the home screen.")]
    prompt = loop_prompt(
        MOBILE_USE,
        "Search for Musk in X and go to his homepage to open the first post.",
        history,
        IMG,
        QwenProfile(),
    )
    system, user = prompt.messages
    assert system["content"][0]["text"] == reference_system
    assert (
        reference_system.startswith("\n\n# Tools")
        and "The screen's resolution is 999x999." in reference_system
    )
    # the cookbook's exact user text, doubled period and "; ." included
    assert user["content"][0]["text"] == (
        "The user query: Search for Musk in X and go to his homepage to open the first post..\n"
        "Task progress (You have done the following operation on the current device): "
        "Step 1: I opened the X app from the home screen.; .\n"
    )
    assert user["content"][1]["type"] == "image"
    assert render_text(prompt).startswith("<|im_start|>system\n\n\n# Tools\n")
    assert prompt.tools is None


def test_goal_loop_history_recent_as_images_older_as_text():
    history = [
        HistoryItem(
            Image.new("RGB", (1280, 800), (i, i, i)),
            f"Action: step {i}\n<tool_call>\n{{}}\n</tool_call>",
            f'click "thing" {i}',
        )
        for i in range(6)
    ]
    prompt = loop_prompt(
        COMPUTER_USE, "Log in", history, IMG, QwenProfile(history="window", history_images=4)
    )
    text = render_text(prompt)
    assert len(prompt.images) == 5  # 4 recent screenshots + the current one
    assert "Previous actions:\nStep 1: click thing 0\nStep 2: click thing 1<|vision_start|>" not in text
    assert "Instruction: Log in\n\nPrevious actions:\nStep 1: click thing 0\nStep 2: click thing 1" in text
    assert text.count("<|im_start|>assistant\nAction: step") == 4
    assert "# Response format" in text and text.index("# Response format") > text.index("</tools>")
    assert text.endswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\n"
    )
    first = loop_prompt(COMPUTER_USE, "Log in", [], IMG, QwenProfile())
    assert "Previous actions:\nNone" in render_text(first) and len(first.images) == 1


def test_a_history_step_without_a_frame_is_sent_as_text_with_the_steps_before_it():
    """A typing step taken from the cache has no frame: screenshots are sent only for the steps
    after it, the turns keep their user-image / assistant order."""
    history = [
        HistoryItem(
            None if i == 3 else Image.new("RGB", (1280, 800), (i, i, i)),
            f"Action: step {i}\n<tool_call>\n{{}}\n</tool_call>",
            f'click "thing" {i}',
        )
        for i in range(6)
    ]
    prompt = loop_prompt(
        COMPUTER_USE, "Log in", history, IMG, QwenProfile(history="window", history_images=4)
    )
    text = render_text(prompt)
    assert len(prompt.images) == 3  # steps 4 and 5, and the current screen
    assert "Step 4: click thing 3" in text and "Step 5:" not in text  # steps 1-4 as text
    assert text.count("<|im_start|>assistant\nAction: step") == 2
    assert prompt.meta == {"history_text": 4, "history_images": 2}


def test_digest_changes_with_content():
    a = act_prompt(COMPUTER_USE, "open the first issue", IMG)
    b = act_prompt(COMPUTER_USE, "open the second issue", IMG)
    assert (
        a.digest() != b.digest()
        and a.digest() == act_prompt(COMPUTER_USE, "open the first issue", IMG).digest()
    )


def _steps(n: int) -> list[HistoryItem]:
    return [
        HistoryItem(
            Image.new("RGB", (1280, 800), (i, i, i)),
            f"Action: step {i}\n<tool_call>\n{{}}\n</tool_call>",
            f'click "thing" {i}',
        )
        for i in range(n)
    ]


def test_blocks_history_appends_between_folds_and_folds_four_at_once():
    """The KV-friendly form: the prompt of step n+1 starts with the whole prompt of step n (less its
    open assistant turn), except at a fold, when the oldest four screenshots become text at once."""
    profile = QwenProfile(history="blocks", history_max=8, history_fold=4)
    assert [history_start(n, profile) for n in range(14)] == [0] * 8 + [4] * 4 + [8] * 2
    tail = "<|im_start|>assistant\n"
    prompts = [render_text(loop_prompt(COMPUTER_USE, "Log in", _steps(n), IMG, profile)) for n in range(14)]
    images = [len(loop_prompt(COMPUTER_USE, "Log in", _steps(n), IMG, profile).images) for n in range(14)]
    assert images == [1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6]
    for n in range(13):
        appended = prompts[n + 1].startswith(prompts[n].removesuffix(tail))
        assert appended == (n + 1 not in (8, 12)), n  # only the folds rewrite
    folded = prompts[8]
    assert (
        "Previous actions:\nStep 1: click thing 0\nStep 2: click thing 1\nStep 3: click thing 2\nStep 4: click thing 3"
        in folded
    )
    assert "Step 5:" not in folded and folded.count("<|im_start|>assistant\nAction: step") == 4


def test_window_history_rewrites_after_the_system_prompt_every_step():
    profile = QwenProfile(history="window", history_images=4)
    a, b = (render_text(loop_prompt(COMPUTER_USE, "Log in", _steps(n), IMG, profile)) for n in (6, 7))
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared < a.index("Instruction: Log in") + 200  # they part right after the instruction


def test_a_profile_refuses_a_history_form_it_does_not_know():
    with pytest.raises(ValueError, match="window' or 'blocks'"):
        QwenProfile(history="sliding")
    with pytest.raises(ValueError, match="history_fold < history_max"):
        QwenProfile(history="blocks", history_max=4, history_fold=4)
