"""Tool-call grammars: what a Qwen3-VL reply may be, so that constrained decoding can make an
unusable reply impossible instead of asking again.

The grammar (xgrammar's EBNF) is the reply format the model was trained on: optional free text (an
``Action:`` line, a thought, a ``<think>`` block), then exactly one

    <tool_call>
    {"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [x, y]}}
    </tool_call>

whose ``arguments`` is one of the space's actions with the arguments that action needs, keys in the
schema's order, ``json.dumps`` spacing and coordinates on the model's grid. Everything our parser and
``ActionSpace.to_action`` accept; nothing they refuse.
"""

from __future__ import annotations

import json
from functools import cache

from pixelpilot.tools.spaces import ActionSpace

__all__ = ["MAX_TEXT", "RESERVE", "tool_call_grammar"]

MAX_TEXT = 256
"""Tokens of ``text`` (typed or answered) a reply's budget always holds after the free text (see
``RESERVE``). The grammar leaves strings unbounded: a bounded repetition (``chr{0,256}``) made xgrammar
take 0.5–4 s per token inside the string (upstream mlc-ai/xgrammar#852), the recursive JSON-string
rule below takes milliseconds. The engine closes a string still open when the budget's end comes
(``ReplyMatcher.closing``), so every reply still ends in a whole call."""

_COMMON = r"""
str ::= "\"" rest
nestr ::= "\"" [^"\\\x00-\x1f] rest | "\"" "\\" ( ["\\/bfnrt] | "u" hex hex hex hex ) rest
rest ::= "\"" | [^"\\\x00-\x1f] rest | "\\" ( ["\\/bfnrt] | "u" hex hex hex hex ) rest
hex ::= [0-9a-fA-F]
int ::= "-"? ( "0" | [1-9] [0-9]{0,4} )
secs ::= "600" ( "." "0"{1,3} )? | ( [1-5] [0-9] [0-9] | [1-9] [0-9] | [0-9] ) ( "." [0-9]{1,3} )?
"""


RESERVE = MAX_TEXT + 96
"""Tokens kept for the tool call after the free text: ``MAX_TEXT`` of text and the call around it."""


def _grid_int(grid: int) -> str:
    """0..grid as a rule (999 → 0..999; 1000 → 0..1000)."""
    if grid == 1000:
        return '"1000" | "0" | [1-9] [0-9]? [0-9]?'
    if grid == 999:
        return '"0" | [1-9] [0-9]? [0-9]?'
    raise ValueError(f"no grammar for a {grid} grid")


def _computer_actions() -> list[str]:
    point = ("left_click", "right_click", "middle_click", "double_click", "triple_click", "mouse_move")
    alts = [f'"\\"{a}\\", \\"coordinate\\": " xy' for a in (*point, "left_click_drag")]
    alts += [
        '"\\"key\\", \\"keys\\": [" nestr ( ", " nestr ){0,7} "]"',
        '"\\"type\\", \\"text\\": " str',
        '"\\"answer\\", \\"text\\": " str',
        '"\\"scroll\\", " ( "\\"coordinate\\": " xy ", " )? "\\"pixels\\": " int',
        '"\\"hscroll\\", " ( "\\"coordinate\\": " xy ", " )? "\\"pixels\\": " int',
        '"\\"wait\\"" ( ", \\"time\\": " secs )?',
        '"\\"terminate\\", \\"status\\": " status',
    ]
    return alts


def _mobile_actions(buttons: list[str]) -> list[str]:
    alts = [
        '"\\"click\\", \\"coordinate\\": " xy',
        '"\\"long_press\\", \\"coordinate\\": " xy ( ", \\"time\\": " secs )?',
        '"\\"swipe\\", \\"coordinate\\": " xy ", \\"coordinate2\\": " xy',
        '"\\"type\\", \\"text\\": " str',
        '"\\"answer\\", \\"text\\": " str',
        '"\\"system_button\\", \\"button\\": " ( ' + " | ".join(f'"\\"{b}\\""' for b in buttons) + " )",
        '"\\"wait\\"" ( ", \\"time\\": " secs )?',
        '"\\"terminate\\", \\"status\\": " status',
    ]
    return alts


@cache
def tool_call_grammar(space: ActionSpace, *, free_text: bool = True) -> str:
    """The EBNF of one reply in ``space``: free text (unless ``free_text=False``), then one tool call."""
    if space.name == "computer_use":
        alts = _computer_actions()
    else:
        props = space.schema()["function"]["parameters"]["properties"]
        alts = _mobile_actions(list(props["button"]["enum"]))
    head = json.dumps({"name": space.name, "arguments": None}).split("null")[0]
    rules = [
        "root ::= " + ("prefix " if free_text else "") + '"<tool_call>\\n" call "\\n</tool_call>"',
        # free text before the call: an Action:/Thought: line, a <think> block (no other "<")
        'prefix ::= ( [^<] | "<think>" | "</think>" )*',
        "call ::= " + json.dumps(head) + ' "{\\"action\\": " action "}}"',
        "action ::= " + " | ".join(f"( {a} )" for a in alts),
        'xy ::= "[" g ", " g "]"',
        "g ::= " + _grid_int(space.grid),
        'status ::= "\\"success\\"" | "\\"failure\\""',
    ]
    if not free_text:
        rules.pop(1)
    return "\n".join(rules) + "\n" + _COMMON.strip() + "\n"
