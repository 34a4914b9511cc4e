"""Declarative use: YAML task files, the runner and the ``pixelpilot`` CLI."""

from .runner import ExitCode, RunOptions, TaskResult, run_task
from .spec import TaskFile, load_task, task_schema

__all__ = ["ExitCode", "RunOptions", "TaskFile", "TaskResult", "load_task", "run_task", "task_schema"]
