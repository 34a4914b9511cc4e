"""The perceive-plan-act loop and everything that talks to the model."""

from pixelpilot.agent.errors import (
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
from pixelpilot.agent.locate import Located, Locator
from pixelpilot.agent.memory import StepRecord
from pixelpilot.agent.report import render_report, write_report
from pixelpilot.agent.runlog import RunData, RunWriter, read_run
from pixelpilot.agent.session import Agent, AgentSettings

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
