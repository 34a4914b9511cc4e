"""One self-contained HTML report per run (inline CSS, frames referenced inside the run directory)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pixelpilot.agent.runlog import RunData, read_run, write_atomic
from pixelpilot.agent.secrets import scrub

__all__ = ["render_report", "write_report"]

_env = Environment(
    loader=PackageLoader("pixelpilot.agent", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _seconds(value: Any) -> float | None:
    """A time from run.json, if it is one (the file is input: it may hold anything)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(ts: float | None) -> str:
    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"
    except (OverflowError, OSError, ValueError):
        return "—"


def _pct(v: float, total: int | None) -> float:
    return round(100.0 * v / total, 3) if total else 0.0


_MODEL_KEYS = (
    "backend",
    "reasked",
    "thought",
    "action_text",
    "grid_point",
    "pixel_point",
    "grounding",
    "thinking",
)
_CALL_KEYS = (
    "kind",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "images",
    "images_to_model",
    "prompt_digest",
    "finish_reason",
    "raw",
)


def _model_view(model: dict[str, Any] | None) -> dict[str, Any] | None:
    """The step's model log with every key the template reads (older or partial logs lack some)."""
    if not model:
        return None
    view: dict[str, Any] = {k: model.get(k) for k in _MODEL_KEYS}
    calls = model.get("calls")
    rows = (
        [{k: c.get(k) for k in _CALL_KEYS} for c in calls if isinstance(c, dict)]
        if isinstance(calls, list)
        else []
    )
    for c in rows:
        for key in ("images", "images_to_model"):
            c[key] = c[key] if isinstance(c[key], list) else []
    view["calls"] = rows
    return view


def render_report(run: RunData) -> str:
    """The report of ``run`` as an HTML string."""
    meta = run.meta
    started, ended = _seconds(meta.get("started")), _seconds(meta.get("ended"))
    duration = f"{ended - started:.2f} s" if started and ended else "—"
    steps: list[dict[str, Any]] = []
    for s in run.steps:
        w, h = s.screen or (0, 0)
        marker = None
        if s.point and w and h:
            marker = {"left": _pct(s.point[0], w), "top": _pct(s.point[1], h)}
        box = None
        if s.box and w and h:
            x, y, bw, bh = s.box
            box = {"left": _pct(x, w), "top": _pct(y, h), "width": _pct(bw, w), "height": _pct(bh, h)}
        steps.append(
            {
                "s": s,
                "marker": marker,
                "box": box,
                "model": _model_view(s.model),
                "timings": {k: f"{v:.0f}" for k, v in s.timings.items()},
            }
        )
    return _env.get_template("report.html.j2").render(
        meta=meta,
        steps=steps,
        problems=run.problems,
        started=_when(started),
        duration=duration,
        status=meta.get("status", "unknown"),
    )


def write_report(path: str | os.PathLike[str]) -> Path:
    """(Re)write ``report.html`` in the run directory ``path``; returns its path."""
    run = read_run(path)
    out = Path(path) / "report.html"
    write_atomic(out, scrub(render_report(run)).encode("utf-8"))  # no secret's value, whatever the page holds
    return out
