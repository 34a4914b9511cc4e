"""pixelpilot: automate graphical interfaces by looking at them.

The names users start from, in one place; everything else lives in ``pixelpilot.agent``,
``pixelpilot.drivers``, ``pixelpilot.tools`` and ``pixelpilot.tasks``. Names load on first use:
importing ``pixelpilot`` (as the pytest plugin does in every project of the environment) costs nothing.

>>> from pixelpilot import Agent, BrowserDriver                       # doctest: +SKIP
>>> with BrowserDriver.launch() as d, Agent(d) as agent:             # doctest: +SKIP
...     agent.open("https://example.org")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Agent",
    "AgentSettings",
    "AndroidDriver",
    "BrowserDriver",
    "BudgetExceeded",
    "CheckFailed",
    "ConfigError",
    "DesktopDriver",
    "DriverError",
    "DriverUnavailable",
    "Element",
    "Elements",
    "FakeDriver",
    "FakeWidget",
    "Interrupted",
    "LocateError",
    "ModelError",
    "ModelOutputError",
    "PixelPilotError",
    "Policy",
    "PolicyRefused",
    "Query",
    "RunLogError",
    "RunOptions",
    "RunResult",
    "Screen",
    "ScriptedModel",
    "Secret",
    "StepFailed",
    "StepRecord",
    "TaskResult",
    "Verdict",
    "__version__",
    "load_model",
    "load_task",
    "read_run",
    "run_task",
]

_WHERE = {
    "Agent": "pixelpilot.agent.session",
    "AgentSettings": "pixelpilot.agent.session",
    "RunResult": "pixelpilot.agent.loop",
    "Verdict": "pixelpilot.agent.loop",
    "StepRecord": "pixelpilot.agent.memory",
    "read_run": "pixelpilot.agent.runlog",
    "load_model": "pixelpilot.agent.models",
    "ScriptedModel": "pixelpilot.agent.models.scripted",
    "AndroidDriver": "pixelpilot.drivers.android",
    "BrowserDriver": "pixelpilot.drivers.browser",
    "DesktopDriver": "pixelpilot.drivers.desktop",
    "FakeDriver": "pixelpilot.drivers.fake",
    "FakeWidget": "pixelpilot.drivers.fake",
    "Screen": "pixelpilot.drivers.base",
    "RunOptions": "pixelpilot.tasks.runner",
    "TaskResult": "pixelpilot.tasks.runner",
    "run_task": "pixelpilot.tasks.runner",
    "load_task": "pixelpilot.tasks.spec",
    "Element": "pixelpilot.agent.reading",
    "Elements": "pixelpilot.agent.reading",
    "Policy": "pixelpilot.agent.policy",
    "PolicyRefused": "pixelpilot.agent.policy",
    "Query": "pixelpilot.agent.query",
    "Secret": "pixelpilot.agent.secrets",
    **dict.fromkeys(
        (
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
            "StepFailed",
        ),
        "pixelpilot.agent.errors",
    ),
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pixelpilot")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'pixelpilot' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what static checkers and editors see
    from pixelpilot.agent.errors import (
        BudgetExceeded,
        CheckFailed,
        ConfigError,
        DriverError,
        DriverUnavailable,
        Interrupted,
        LocateError,
        ModelError,
        ModelOutputError,
        PixelPilotError,
        RunLogError,
        StepFailed,
    )
    from pixelpilot.agent.loop import RunResult, Verdict
    from pixelpilot.agent.memory import StepRecord
    from pixelpilot.agent.models import load_model
    from pixelpilot.agent.models.scripted import ScriptedModel
    from pixelpilot.agent.policy import Policy, PolicyRefused
    from pixelpilot.agent.query import Query
    from pixelpilot.agent.reading import Element, Elements
    from pixelpilot.agent.runlog import read_run
    from pixelpilot.agent.secrets import Secret
    from pixelpilot.agent.session import Agent, AgentSettings
    from pixelpilot.drivers.android import AndroidDriver
    from pixelpilot.drivers.base import Screen
    from pixelpilot.drivers.browser import BrowserDriver
    from pixelpilot.drivers.desktop import DesktopDriver
    from pixelpilot.drivers.fake import FakeDriver, FakeWidget
    from pixelpilot.tasks.runner import RunOptions, TaskResult, run_task
    from pixelpilot.tasks.spec import load_task
