"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixtures: ``agent`` (function), ``browser_driver`` (session), ``desktop_driver`` (function),
``android_driver`` (session). Options reuse pytest-playwright's names where the concept is the same
(``--headed``, ``--slowmo``, ``--output``, ``--screenshot``) and add ``--pixelpilot-model``,
``--pixelpilot-driver`` and ``--record-run``. ``@pytest.mark.pixelpilot(max_steps=8, model=..., driver=...)``
sets per-test settings. On failure the test's run directory (report.html, frames, steps.jsonl) is kept
under ``<output>/<test-id>/`` and the failure shows the step table and the last frame, not a deep
traceback. ``*.task.yaml`` files are collected as test items.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.errors import PixelPilotError
from pixelpilot.agent.memory import step_table

_RUN_KEY = pytest.StashKey["_TestRun"]()
_REPORT_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


def _add(group: Any, *names: str, **kwargs: Any) -> None:
    """Add an option unless another plugin (pytest-playwright) already defines it with that name."""
    with contextlib.suppress(ValueError):
        group.addoption(*names, **kwargs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pixelpilot", "pixelpilot: UI tests that look at the screen")
    _add(group, "--headed", action="store_true", default=False, help="show the browser (needs a display)")
    _add(group, "--slowmo", type=float, default=0, help="milliseconds between browser operations")
    _add(
        group, "--output", default="test-results", help="where failing tests' runs go (default: test-results)"
    )
    _add(
        group,
        "--screenshot",
        choices=["on", "off", "only-on-failure"],
        default="only-on-failure",
        help="keep the last screenshot of each test (default: only-on-failure)",
    )
    group.addoption(
        "--pixelpilot-model",
        default=None,
        help="model for the agent fixture (qwen3-vl-4b, a directory, openai:<url>)",
    )
    group.addoption(
        "--pixelpilot-driver",
        choices=["browser", "desktop", "android"],
        default="browser",
        help="driver behind the agent fixture (default: browser)",
    )
    group.addoption(
        "--record-run",
        choices=["on", "off", "retain-on-failure"],
        default="retain-on-failure",
        help="keep the run directory of each test (default: retain-on-failure)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pixelpilot(**settings): per-test pixelpilot settings: driver, model, max_steps, viewport, wait_timeout",
    )


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid).strip("-")[:150]


def _settings(item: pytest.Item) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("pixelpilot"))):
        merged.update(mark.kwargs)
    return merged


# -- drivers ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_driver(pytestconfig: pytest.Config) -> Iterator[Any]:
    """One Chromium for the session (headless unless --headed); each ``agent`` starts on a blank page."""
    from pixelpilot.drivers.browser import BrowserDriver

    with BrowserDriver.launch(
        headless=not pytestconfig.getoption("headed"), slow_mo=pytestconfig.getoption("slowmo")
    ) as d:
        yield d


@pytest.fixture
def desktop_driver(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh private Xvfb for the test (launch apps with ``desktop_driver.launch([...])``)."""
    from pixelpilot.drivers.desktop import DesktopDriver

    s = _settings(request.node)
    with DesktopDriver.start(size=tuple(s.get("size", (1280, 800)))) as d:
        yield d


@pytest.fixture(scope="session")
def android_driver() -> Iterator[Any]:
    """The device named by ANDROID_SERIAL, or the only one, on the adb server."""
    from pixelpilot.drivers.android import AndroidDriver

    with AndroidDriver.connect() as d:
        yield d


class _TestRun:
    def __init__(self, agent: Any, run_dir: Path | None, keep: str, out: Path) -> None:
        self.agent, self.run_dir, self.keep, self.out = agent, run_dir, keep, out


@pytest.fixture
def agent(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> Iterator[Any]:
    """An :class:`agent.Agent` on the chosen driver, recording the test's run."""
    from pixelpilot.agent.session import Agent, AgentSettings

    s = _settings(request.node)
    kind = s.get("driver") or pytestconfig.getoption("pixelpilot_driver")
    driver = request.getfixturevalue(f"{kind}_driver")
    from pixelpilot.drivers.base import Navigable

    if isinstance(driver, Navigable):  # a shared browser: every test starts on a blank page
        driver.goto("about:blank")
    model = s.get("model") or pytestconfig.getoption("pixelpilot_model")
    record = pytestconfig.getoption("record_run")
    out = Path(pytestconfig.getoption("output")) / _slug(request.node.nodeid)
    scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-test-")) if record != "off" else None
    settings = AgentSettings(
        **{k: s[k] for k in ("wait_timeout", "settle_timeout", "max_steps", "use_model") if k in s}
    )
    a = Agent(driver, model=model, settings=settings, output=scratch, task=request.node.name)
    run = _TestRun(a, scratch, record, out)
    request.node.stash[_RUN_KEY] = run
    yield a
    _finish(request.node, run, pytestconfig)


def _finish(item: pytest.Item, run: _TestRun, config: pytest.Config) -> None:
    reports = item.stash.get(_REPORT_KEY, {})
    failed = any(r.failed for r in reports.values())
    agent = run.agent
    shot_mode = config.getoption("screenshot")
    if shot_mode == "on" or (shot_mode == "only-on-failure" and failed):
        try:
            screen = agent.driver.observe(tree=False)
            run.out.mkdir(parents=True, exist_ok=True)
            screen.image.save(run.out / "screenshot.png")
        except Exception:  # noqa: BLE001 - a dead driver has no last screenshot; the run log still has frames
            pass
    if agent.recorder is not None:
        agent.close("failed" if failed else None)
        keep = run.keep == "on" or (run.keep == "retain-on-failure" and failed)
        if keep and run.run_dir is not None:
            run.out.mkdir(parents=True, exist_ok=True)
            target = run.out / "run"
            shutil.rmtree(target, ignore_errors=True)
            for child in run.run_dir.iterdir():  # the one run directory the agent recorded
                shutil.move(str(child), target)
        if run.run_dir is not None:
            shutil.rmtree(run.run_dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    item.stash.setdefault(_REPORT_KEY, {})[rep.when] = rep
    run = item.stash.get(_RUN_KEY, None)
    if run is None or rep.when != "call" or not rep.failed:
        return
    steps = run.agent.steps
    where = run.out / "run"
    lines = [
        f"pixelpilot: {len(steps)} step(s), run kept in {where}"
        if run.keep != "off"
        else f"pixelpilot: {len(steps)} step(s)"
    ]
    lines.append(step_table(steps))
    last = next((s for s in reversed(steps) if s.frame), None)
    if last is not None and run.keep != "off":
        lines.append(f"  last frame: {where / last.frame}")
        lines.append(f"  report:     {where / 'report.html'}")
    table = "\n".join(lines)
    if call.excinfo is not None and isinstance(call.excinfo.value, PixelPilotError):
        rep.longrepr = f"{type(call.excinfo.value).__name__}: {call.excinfo.value}\n\n{table}"
    else:
        rep.sections.append(("pixelpilot steps", table))


# -- YAML task files as test items --------------------------------------------------------------
def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name.endswith((".task.yaml", ".task.yml")):
        return TaskFileCollector.from_parent(parent, path=file_path)
    return None


class TaskFileCollector(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield TaskItem.from_parent(self, name=self.path.name.split(".task.")[0])


class TaskFailed(Exception):
    def __init__(self, result: Any) -> None:
        self.result = result
        super().__init__(result.error or result.status)


class TaskItem(pytest.Item):
    """One task file, run by the task runner; a failure shows its steps, not a traceback."""

    def runtest(self) -> None:
        from pixelpilot.tasks.runner import RunOptions, run_task

        cfg = self.config
        out = Path(cfg.getoption("output")) / _slug(self.nodeid)
        opts = RunOptions(
            output=out,
            headed=cfg.getoption("headed") or None,
            model=cfg.getoption("pixelpilot_model"),
            slow_mo=cfg.getoption("slowmo") or None,
        )
        result = run_task(self.path, opts)
        self.user_properties.append(("run_dir", str(result.run_dir)))
        if result.status != "passed":
            raise TaskFailed(result)
        if cfg.getoption("record_run") != "on" and result.run_dir is not None:
            shutil.rmtree(out, ignore_errors=True)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        exc = excinfo.value
        if isinstance(exc, TaskFailed):
            r = exc.result
            lines = [f"task {r.task!r} {r.status}: {r.error}", step_table(r.steps)]
            last = next((s for s in reversed(r.steps) if s.frame), None)
            if last is not None and r.run_dir is not None:
                lines.append(f"  last frame: {r.run_dir / last.frame}")
            lines.append(f"  report:     {r.run_dir / 'report.html' if r.run_dir else '-'}")
            return "\n".join(lines)
        if isinstance(exc, PixelPilotError):
            return f"{type(exc).__name__}: {exc}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"task: {self.name}"
