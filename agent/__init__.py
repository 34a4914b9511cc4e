"""The perceive-plan-act loop and everything that talks to the model."""

from .errors import (
    BudgetExceeded,
    CheckFailed,
    ConfigError,
    DriverError,
    DriverUnavailable,
    LocateError,
    ModelError,
    ModelOutputError,
    PixelPilotError,
    StepFailed,
)
from .locate import Located, Locator
from .memory import StepRecord
from .report import render_report, write_report
from .runlog import RunData, RunWriter, read_run
from .session import Agent, AgentSettings

__all__ = [
    "Agent",
    "AgentSettings",
    "BudgetExceeded",
    "CheckFailed",
    "ConfigError",
    "DriverError",
    "DriverUnavailable",
    "LocateError",
    "Located",
    "Locator",
    "ModelError",
    "ModelOutputError",
    "PixelPilotError",
    "RunData",
    "RunWriter",
    "StepFailed",
    "StepRecord",
    "read_run",
    "render_report",
    "write_report",
]
