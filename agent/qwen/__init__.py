"""Qwen3-VL's wire format: prompts, the tool-call parser, the 0–1000 grid, the model profile."""

from pixelpilot.agent.qwen.grid import OffScreen, grid_to_pixels, pixels_to_grid
from pixelpilot.agent.qwen.parse import (
    GroundingItem,
    ParsedReply,
    ToolCall,
    parse_check,
    parse_grounding,
    parse_reply,
    reply_to_action,
)
from pixelpilot.agent.qwen.profile import QwenProfile, Sampling
from pixelpilot.agent.qwen.prompts import (
    HistoryItem,
    Prompt,
    act_prompt,
    ask_prompt,
    check_prompt,
    grounding_prompt,
    loop_prompt,
    reask,
    render_text,
)

__all__ = [
    "GroundingItem",
    "HistoryItem",
    "OffScreen",
    "ParsedReply",
    "Prompt",
    "QwenProfile",
    "Sampling",
    "ToolCall",
    "act_prompt",
    "ask_prompt",
    "check_prompt",
    "grid_to_pixels",
    "grounding_prompt",
    "loop_prompt",
    "parse_check",
    "parse_grounding",
    "parse_reply",
    "pixels_to_grid",
    "reask",
    "render_text",
    "reply_to_action",
]
