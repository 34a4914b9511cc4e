"""Declarative use: YAML task files, the runner and the ``pixelpilot`` CLI.

Names load on first use, so that the pytest plugin (``pixelpilot.tasks.pytest_plugin``), which pytest
imports in every project of the environment, does not import the Agent with it."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ExitCode", "RunOptions", "TaskFile", "TaskResult", "load_task", "run_task", "task_schema"]

_WHERE = {
    "ExitCode": ".runner",
    "RunOptions": ".runner",
    "TaskResult": ".runner",
    "run_task": ".runner",
    "TaskFile": ".spec",
    "load_task": ".spec",
    "task_schema": ".spec",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from pixelpilot.tasks.runner import ExitCode, RunOptions, TaskResult, run_task
    from pixelpilot.tasks.spec import TaskFile, load_task, task_schema
