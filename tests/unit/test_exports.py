"""The public surface of each package is pinned: changing it is a deliberate act."""

from pixelpilot import agent, drivers, tasks, tools


def test_agent_exports():
    assert agent.__all__ == [
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


def test_drivers_exports():
    assert drivers.__all__ == [
        "AndroidDriver",
        "Box",
        "BrowserDriver",
        "DesktopDriver",
        "DialogHandler",
        "Driver",
        "ElementDriver",
        "FakeDriver",
        "FakeWidget",
        "FocusReader",
        "Navigable",
        "NavigationResult",
        "Screen",
        "Settling",
        "UINode",
        "find_chromium",
    ]


def test_tools_and_tasks_exports():
    assert "Action" in tools.__all__ and "COMPUTER_USE" in tools.__all__ and "parse_action" in tools.__all__
    assert tasks.__all__ == [
        "ExitCode",
        "RunOptions",
        "TaskFile",
        "TaskResult",
        "load_task",
        "run_task",
        "task_schema",
    ]
    for pkg in (agent, drivers, tasks, tools):
        for name in pkg.__all__:
            assert hasattr(pkg, name), f"{pkg.__name__}.{name} is exported but missing"


def test_exception_tree_has_one_root():
    for name in (
        "BudgetExceeded",
        "CheckFailed",
        "ConfigError",
        "DriverError",
        "DriverUnavailable",
        "LocateError",
        "ModelError",
        "ModelOutputError",
        "StepFailed",
    ):
        assert issubclass(getattr(agent, name), agent.PixelPilotError)
    assert issubclass(agent.CheckFailed, agent.StepFailed)
    assert issubclass(agent.DriverUnavailable, agent.DriverError)
