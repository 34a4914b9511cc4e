"""``pixelpilot parse-reply``: debug a model reply by hand.

pixelpilot parse-reply --screen 2560x1440 [--space mobile_use] [--image f.png --out marked.png] < reply.txt
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from rich.console import Console
from rich.markup import escape

from pixelpilot.agent.errors import ModelOutputError
from pixelpilot.agent.qwen import parse_grounding, parse_reply, reply_to_action
from pixelpilot.tools.images import open_picture
from pixelpilot.tools.spaces import get_space

__all__ = ["cmd_parse_reply"]


def cmd_parse_reply(args: argparse.Namespace, console: Console) -> int:
    m = re.fullmatch(r"(\d+)[xX×](\d+)", args.screen.strip())
    if not m or not int(m.group(1)) or not int(m.group(2)) or len(args.screen) > 20:
        console.print(
            f"[red]error:[/] --screen must be WIDTHxHEIGHT, e.g. 2560x1440 (got {escape(repr(args.screen[:40]))})"
        )
        return 2
    size = (int(m.group(1)), int(m.group(2)))
    space = get_space(args.space)
    divisor = args.divisor or space.grid
    raw = sys.stdin.read()
    parsed = parse_reply(raw)
    out: dict[str, object]
    try:
        action, facts = reply_to_action(parsed, space, size, divisor=divisor)
        out = {"action": action.model_dump(mode="json"), **facts, "screen": list(size), "divisor": divisor}
        point, box = action.point, None
    except ModelOutputError as exc:
        try:  # maybe a grounding answer (point_2d / bbox_2d)
            items = parse_grounding(raw)
        except ModelOutputError:
            print(json.dumps({"error": exc.reason, "raw": raw}, ensure_ascii=False))
            sys.stderr.write(f"not a usable reply: {exc.reason}\n")
            return 1
        from pixelpilot.agent.qwen.grid import OffScreen, grid_to_pixels

        first = items[0]
        try:
            if first.point:
                point, box = grid_to_pixels(first.point, size, 1000), None
            else:
                assert first.bbox is not None
                p0, p1 = (
                    grid_to_pixels(first.bbox[:2], size, 1000),
                    grid_to_pixels(first.bbox[2:], size, 1000),
                )
                box, point = (*p0, *p1), ((p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2)
        except OffScreen as off:
            print(json.dumps({"error": str(off), "raw": raw}, ensure_ascii=False))
            sys.stderr.write(f"not a usable reply: {off}\n")
            return 1
        out = {
            "grounding": [i.__dict__ for i in items],
            "pixel_point": list(point),
            "pixel_box": list(box) if box else None,
            "screen": list(size),
        }
    if parsed.thought or parsed.action_text or parsed.thinking:
        out.update(thought=parsed.thought, action_text=parsed.action_text, thinking=parsed.thinking)
    print(
        "{\n"
        + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in out.items())
        + "\n}"
    )
    if args.image:
        _mark(args, size, point, box, console)
    return 0


def _mark(
    args: argparse.Namespace,
    size: tuple[int, int],
    point: tuple[int, int] | None,
    box: tuple[int, ...] | None,
    console: Console,
) -> None:
    from PIL import ImageDraw

    img = open_picture(args.image, what=str(args.image))
    if img.size != size:
        sys.stderr.write(
            f"note: the image is {img.width}x{img.height}, --screen says {size[0]}x{size[1]}; drawing in --screen pixels scaled to the image\n"
        )
    sx, sy = img.width / size[0], img.height / size[1]
    d = ImageDraw.Draw(img)
    if box:
        d.rectangle([box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy], outline=(9, 105, 218), width=3)
    if point:
        x, y, r = point[0] * sx, point[1] * sy, max(8, img.width // 120)
        d.ellipse([x - r, y - r, x + r, y + r], outline=(255, 45, 85), width=3)
        d.line([x - 2 * r, y, x + 2 * r, y], fill=(255, 45, 85), width=2)
        d.line([x, y - 2 * r, x, y + 2 * r], fill=(255, 45, 85), width=2)
    out = args.out or args.image.with_name(args.image.stem + ".marked.png")
    img.save(out)
    sys.stderr.write(f"marked frame: {out}\n")
