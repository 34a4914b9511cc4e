"""Secrets: values a run types but never writes down.

A :class:`Secret` is typed by the driver and appears everywhere else — the step record, run.json, the
report, progress lines, JUnit, the console, logs, error messages, prompts to a model — as its
placeholder ``${secret:NAME}`` or as ``****``. Task files name them (``type: {secret: DB_PASSWORD, into:
Password}``, ``${secret:NAME}`` in any text); their values come from the environment or a dotenv file
(``pixelpilot run --secrets .env``). A model is given the placeholder and types it; the driver receives
the value.

As a last line of defence every text a run writes goes through :func:`scrub`, which replaces every
secret value this process has seen with ``****``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pixelpilot.agent.errors import ConfigError

__all__ = [
    "MASK",
    "ScrubFilter",
    "Secret",
    "SecretStore",
    "has_placeholder",
    "has_secrets",
    "reveal",
    "scrub",
    "scrub_obj",
]

MASK = "****"
PLACEHOLDER = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_SCRUB = 3
"""Values shorter than this are not searched for in free text (a 2-letter secret would blank every word
that contains it); they are still kept out of every record field."""

_lock = threading.Lock()
_values: dict[str, str] = {}
"""Every secret value this process has seen, by name."""
_pattern: re.Pattern[str] | None = None


def _register(name: str, value: str) -> None:
    global _pattern
    with _lock:
        if _values.get(name) == value:
            return
        _values[name] = value
        long = sorted({v for v in _values.values() if len(v) >= MIN_SCRUB}, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in long)) if long else None


class Secret:
    """A value to type that is never written anywhere: ``agent.type(Secret(os.environ["PW"], "PW"),
    into="Password")``. ``str()`` is its placeholder; :meth:`reveal` is for the driver."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret") -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a str")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"a secret's name is a word (letters, digits, _), not {name!r}")
        self._value = value
        self.name = name
        _register(name, value)

    def reveal(self) -> str:
        return self._value

    @property
    def placeholder(self) -> str:
        return f"${{secret:{self.name}}}"

    def __str__(self) -> str:
        return self.placeholder

    def __repr__(self) -> str:
        return f"Secret({self.name!r})"

    def __reduce__(self) -> Any:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str) -> str:
    """``text`` with every secret value seen so far replaced by ``****``."""
    pattern = _pattern
    if not text or not _values:
        return text
    if pattern is not None:
        text = pattern.sub(MASK, text)
    short = [v for v in _values.values() if 0 < len(v) < MIN_SCRUB]
    return MASK if text in short else text


def scrub_obj(obj: Any) -> Any:
    """A JSON-like structure with every string scrubbed."""
    if not _values:
        return obj
    if isinstance(obj, str):
        return scrub(obj)
    if isinstance(obj, dict):
        return {k: scrub_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_obj(v) for v in obj]
    if isinstance(obj, tuple):  # a point stays a tuple
        return tuple(scrub_obj(v) for v in obj)
    return obj


def reveal(text: str) -> str:
    """``text`` with each ``${secret:NAME}`` of a known secret replaced by its value (for the driver
    only: a model's typing of a placeholder becomes the value at the keyboard)."""
    return PLACEHOLDER.sub(lambda m: _values.get(m[1], m[0]), text)


def known(name: str) -> Secret:
    """The secret registered under ``name`` (a task file's, read before its run began)."""
    with _lock:
        if name not in _values:
            raise ConfigError(f"no secret named {name!r} was given to this run")
        value = _values[name]
    return Secret(value, name)


def has_secrets() -> bool:
    """Whether this process has seen a secret (scrubbing costs nothing until then)."""
    return bool(_values)


def has_placeholder(text: str) -> bool:
    return any(m[1] in _values for m in PLACEHOLDER.finditer(text))


class SecretStore:
    """Where a run's secrets come from: a dotenv file (``--secrets FILE``), then the environment."""

    def __init__(
        self, file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.values: dict[str, str] = {}
        if file is not None:
            from dotenv import dotenv_values

            path = Path(file)
            if not path.is_file():
                raise ConfigError(f"no secrets file at {path}")
            self.values = {k: v for k, v in dotenv_values(path).items() if v is not None}
        self.env = os.environ if env is None else env

    def get(self, name: str, *, where: str = "") -> Secret:
        value = self.values.get(name, self.env.get(name))
        if value is None:
            raise ConfigError(
                f"{where + ': ' if where else ''}no secret named {name!r}: set the environment variable "
                f"{name} or give a dotenv file with --secrets"
            )
        return Secret(value, name)


class ScrubFilter(logging.Filter):
    """Scrubs secret values out of every log record (installed on pixelpilot's loggers' handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is not None:
            record.msg = scrub(record.getMessage())
            record.args = None
        return True
