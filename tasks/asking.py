"""A person's answer to a ``confirm`` rule, asked through two small files next to a run started by
the console: the run writes ``<stem>.ask.json`` (the question) and waits for ``<stem>.answer.json``
(``{"n": <the question's number>, "allow": true|false}``), which the console's Live page writes. No
answer within ``timeout`` seconds is a refusal."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.agent.secrets import scrub

__all__ = ["FileAsk", "pending_question", "answer_question"]


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data), "utf-8")
    os.replace(tmp, path)  # a reader never sees half a question


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class FileAsk:
    """``Policy.ask`` for a run the console started (``--confirm-file STEM``)."""

    stem: Path
    timeout: float = 600.0
    poll: float = 0.2
    _n: int = field(default=0, init=False)

    def __call__(self, question: str) -> bool:
        self._n += 1
        ask, answer = _paths(self.stem)
        with contextlib.suppress(OSError):
            answer.unlink()
        _write(ask, {"n": self._n, "question": scrub(question), "asked": time.time()})
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                got = _read(answer)
                if got is not None and got.get("n") == self._n:
                    return got.get("allow") is True
                time.sleep(self.poll)
            return False
        finally:
            for path in (ask, answer):
                with contextlib.suppress(OSError):
                    path.unlink()


def _paths(stem: Path) -> tuple[Path, Path]:
    return stem.with_name(stem.name + ".ask.json"), stem.with_name(stem.name + ".answer.json")


def pending_question(stem: Path) -> dict[str, Any] | None:
    """The question a run is waiting on, if any: ``{"n", "question", "asked"}``."""
    return _read(_paths(stem)[0])


def answer_question(stem: Path, n: int, allow: bool) -> bool:
    """Answer question ``n``; False when the run is not (or no longer) waiting on it."""
    pending = pending_question(stem)
    if pending is None or pending.get("n") != n:
        return False
    _write(_paths(stem)[1], {"n": n, "allow": bool(allow)})
    return True
