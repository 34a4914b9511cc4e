"""The exception tree. Every error pixelpilot raises derives from :class:`PixelPilotError`.

    PixelPilotError
    ├── ConfigError            bad task file or setting (names file and line)
    ├── DriverError            a driver broke while acting or observing
    │   └── DriverUnavailable  the program a driver needs is missing (says how to install it)
    ├── ModelError             the model backend failed
    │   ├── ServerUnavailable  the model server cannot be reached or keeps failing (another replica may answer)
    │   └── ModelOutputError   the model replied with something unusable (keeps the raw reply)
    ├── LocateError            a target was not found, or was ambiguous (lists the candidates)
    ├── StepFailed             a step ran but its expectation did not hold (e.g. ``see``/``wait_for``)
    │   └── CheckFailed        an assertion about the screen failed
    ├── BudgetExceeded         steps, seconds or model calls ran out
    └── RunLogError            the run directory cannot be written (disk full, no permission)

    KeyboardInterrupt
    └── Interrupted            SIGTERM (or another stop request): the run ends as interrupted

Exceptions carry data and never log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelpilot.tools.errors import DriverError, DriverUnavailable, PixelPilotError

__all__ = [
    "BudgetExceeded",
    "CheckFailed",
    "ConfigError",
    "DriverError",
    "DriverUnavailable",
    "Interrupted",
    "LocateError",
    "ModelError",
    "ModelOutputError",
    "PixelPilotError",
    "RunLogError",
    "ServerUnavailable",
    "StepFailed",
]


class ConfigError(PixelPilotError):
    """A task file or setting is invalid. ``file`` and ``line`` say where, when known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None) -> None:
        self.file = file
        self.line = line
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(where + message)
        self.message = message


class ModelError(PixelPilotError):
    """The model backend failed (cannot load, server down, timeout)."""


class ServerUnavailable(ModelError):
    """The model server could not be reached, or kept failing (refused connections, time-outs, 429,
    5xx): another replica of it may answer (see :class:`~pixelpilot.agent.models.replicas.Replicas`)."""


class ModelOutputError(ModelError):
    """The model's reply could not be turned into an action. ``raw`` is the reply as received."""

    def __init__(self, message: str, *, raw: str) -> None:
        self.raw = raw
        super().__init__(f"{message}\n  raw reply: {raw!r}")
        self.reason = message


class LocateError(PixelPilotError):
    """A target was not found, or matched several elements. ``candidates`` lists what was seen."""

    def __init__(
        self, message: str, *, target: str, candidates: Sequence[Any] = (), kind: str = "not_found"
    ) -> None:
        self.target = target
        self.kind = kind
        """not_found, ambiguous, covered or off_screen."""
        self.candidates = list(candidates)
        text = message
        if self.candidates:
            shown = "\n".join(f"    - {c}" for c in self.candidates[:15])
            more = f"\n    ... and {len(self.candidates) - 15} more" if len(self.candidates) > 15 else ""
            text += f"\n  candidates:\n{shown}{more}"
        super().__init__(text)


class StepFailed(PixelPilotError):
    """A step ran, but what it expected did not happen."""


class CheckFailed(StepFailed):
    """An assertion about the screen (``see``, ``check``) did not hold. ``reason`` says why."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        self.reason = reason
        super().__init__(message + (f": {reason}" if reason else ""))


class BudgetExceeded(PixelPilotError):
    """A budget (steps, seconds, model calls) ran out."""


class RunLogError(PixelPilotError):
    """The run directory cannot be written: the disk is full, or the folder is not writable."""


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop (SIGTERM, a console's stop button, a parent that went away). A
    KeyboardInterrupt, so that everything that ends cleanly on Ctrl-C ends cleanly on it too."""

    def __init__(self, message: str = "interrupted (SIGTERM)") -> None:
        super().__init__(message)
