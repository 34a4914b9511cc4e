"""The pytest plugin (registered through the ``pytest11`` entry point), modelled on pytest-playwright.

- ``agent``: an Agent on the driver the test chose (``--pixelpilot-driver`` or the ``pixelpilot`` marker),
  recording the test's run; the model (``--pixelpilot-model`` or the marker's ``model=``) is loaded once per
  session and shared by every test of the worker.
- ``browser_driver``: the test's own page in **a fresh browser context** (cookies, storage and
  permissions isolated between tests), in one browser per worker.
- With **pytest-playwright** installed, its options, its ``page`` fixture and its artifacts are used:
  the agent drives the test's ``page``, so the steps also appear in Playwright's trace. Without it,
  this plugin registers the same option names (``--headed``, ``--browser-channel``, ``--slowmo``,
  ``--output``, ``--tracing``, ``--video``, ``--screenshot``, ``--base-url``) and the same fixtures
  (``browser_type_launch_args``, ``browser_context_args``, ``browser``, ``context``, ``page``,
  ``output_path``, ``base_url``), with the same meaning. Either load order works: which one applies is
  decided once every plugin is registered.
- Artifacts are laid out as pytest-playwright lays them: ``test-results/<test-id>/`` (``trace.zip``,
  ``video.webm``, ``test-failed-1.png``) plus ``run/`` (the pixelpilot run: report.html, frames,
  steps.jsonl), the folder cleaned at session start. ``*.task.yaml`` files are collected as test items.

This module imports nothing of pixelpilot at import time: pytest loads it in every project of the
environment, including the ones that never use it.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
_RUN = pytest.StashKey["_TestRun"]()
_KEEPER = pytest.StashKey[Any]()
"""The driver the session's task files share (a fresh browser context each), per worker process."""
_PW_MODULE = "pytest_playwright.pytest_playwright"


def _pytest_playwright(config: pytest.Config) -> bool:
    """Whether pytest-playwright is in use in this run (registered, not blocked with -p no:playwright)."""
    module = sys.modules.get(_PW_MODULE)
    return module is not None and config.pluginmanager.is_registered(module)


# -- options ---------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pixelpilot", "pixelpilot: UI tests that look at the screen")
    group.addoption(
        "--pixelpilot-model",
        default=None,
        help="model for the agent fixture (qwen3-vl-4b, a directory, openai:<url>); loaded once per session",
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
        help="keep each test's pixelpilot run under <output>/<test-id>/run (default: retain-on-failure)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> Generator[None]:
    """Every plugin is registered by now (entry points, -p, the initial conftests): provide
    pytest-playwright's options and fixtures only when it is not in use."""
    result = yield
    pm = early_config.pluginmanager
    if _pytest_playwright(early_config) or pm.has_plugin("pixelpilot-playwright-options"):
        return result
    group = parser.getgroup(
        "playwright", "Playwright (provided by pixelpilot: pytest-playwright is not in use)"
    )
    group.addoption(
        "--browser",
        action="append",
        default=[],
        choices=["chromium"],
        help="browser engine (pixelpilot drives Chromium)",
    )
    group.addoption("--headed", action="store_true", default=False, help="run tests in headed mode")
    group.addoption("--browser-channel", default=None, help="browser channel to be used (chrome, msedge ...)")
    group.addoption("--slowmo", default=0, type=int, help="milliseconds between browser operations")
    group.addoption(
        "--output", default="test-results", help="directory for artifacts (default: test-results)"
    )
    group.addoption(
        "--tracing",
        default="off",
        choices=["on", "off", "retain-on-failure"],
        help="whether to record a Playwright trace for each test",
    )
    group.addoption(
        "--video", default="off", choices=["on", "off", "retain-on-failure"], help="record video of each test"
    )
    group.addoption(
        "--screenshot",
        default="off",
        choices=["on", "off", "only-on-failure"],
        help="capture a screenshot after each test",
    )
    group.addoption(
        "--full-page-screenshot", action="store_true", default=False, help="full-page screenshots"
    )
    from pixelpilot.tasks import pytest_browser

    pm.register(pytest_browser, "pixelpilot-playwright-options")
    module = sys.modules.get("pytest_base_url.plugin")
    if module is None or not pm.is_registered(module):  # pytest-base-url provides --base-url itself
        parser.addini("base_url", help="base url for the application under test")
        group.addoption(
            "--base-url",
            metavar="url",
            default=os.getenv("PYTEST_BASE_URL"),
            help="base url for the application under test",
        )
        from pixelpilot.tasks import pytest_base_url

        pm.register(pytest_base_url, "pixelpilot-base-url")
    return result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pixelpilot(**settings): per-test pixelpilot settings: driver, model, max_steps, size, wait_timeout, "
        "settle_timeout, use_model",
    )
    if not _pytest_playwright(config):
        config.addinivalue_line("markers", "browser_context_args(**kwargs): per-test browser context options")
        # like pytest-playwright: artifacts of earlier runs go (once, not in every xdist worker)
        if not hasattr(config, "workerinput") and config.getoption("output", None):
            shutil.rmtree(config.getoption("output"), ignore_errors=True)


def slug(nodeid: str) -> str:
    """pytest-playwright's folder name for a test (python-slugify of the node id)."""
    return re.sub(r"[^a-z0-9]+", "-", nodeid.lower()).strip("-")[:255]


def _settings(item: pytest.Item) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers("pixelpilot"))):
        merged.update(mark.kwargs)
    return merged


def failed(item: pytest.Item) -> bool:
    return any(r.failed for r in item.stash.get(_REPORTS, {}).values())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    rep: pytest.TestReport = yield
    item.stash.setdefault(_REPORTS, {})[rep.when] = rep
    run = item.stash.get(_RUN, None)
    if run is not None and rep.when == "call" and rep.failed:
        _explain(rep, call, run)
    return rep


# -- drivers and the model -----------------------------------------------------------------------------
@pytest.fixture
def browser_driver(page: Any) -> Iterator[Any]:
    """The browser driver over the test's ``page`` (a fresh context per test)."""
    from pixelpilot.drivers.browser import BrowserDriver

    driver = BrowserDriver.attach(page)
    yield driver
    driver.close()  # detaches; the context is closed by its own fixture


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


class Models:
    """The session's models, each loaded the first time a test asks for it and shared afterwards."""

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}

    def get(self, spec: str | None) -> Any:
        if spec is None:
            return None
        if spec not in self._loaded:
            from pixelpilot.agent import models

            self._loaded[spec] = models.load_model(spec)
        return self._loaded[spec]

    def close(self) -> None:
        for model in self._loaded.values():
            close = getattr(model, "close", None)
            if callable(close):
                close()


@pytest.fixture(scope="session")
def pixelpilot_models() -> Iterator[Models]:
    """Models by spec, loaded once per session (per worker under xdist)."""
    models = Models()
    yield models
    models.close()


class _TestRun:
    def __init__(self, agent: Any, scratch: Path | None, keep: str, out: Path) -> None:
        self.agent, self.scratch, self.keep, self.out = agent, scratch, keep, out


@pytest.fixture
def agent(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config, pixelpilot_models: Models
) -> Iterator[Any]:
    """An :class:`pixelpilot.Agent` on the chosen driver, recording the test's run."""
    from pixelpilot.agent.session import Agent, AgentSettings

    s = _settings(request.node)
    kind = s.get("driver") or pytestconfig.getoption("pixelpilot_driver")
    driver = request.getfixturevalue(f"{kind}_driver")
    model = pixelpilot_models.get(s.get("model") or pytestconfig.getoption("pixelpilot_model"))
    record = pytestconfig.getoption("record_run")
    out = Path(request.getfixturevalue("output_path"))
    scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-test-")) if record != "off" else None
    settings = AgentSettings(
        **{k: s[k] for k in ("wait_timeout", "settle_timeout", "max_steps", "use_model") if k in s}
    )
    a = Agent(driver, model=model, settings=settings, output=scratch, task=request.node.name)
    run = _TestRun(a, scratch, record, out)
    request.node.stash[_RUN] = run
    yield a
    _finish(request.node, run)


def _finish(item: pytest.Item, run: _TestRun) -> None:
    test_failed = failed(item)
    agent = run.agent
    shot = item.config.getoption("screenshot")
    if not hasattr(agent.driver, "page") and (shot == "on" or (test_failed and shot == "only-on-failure")):
        # a desktop or Android test (a browser test's page is captured with its context)
        try:
            image = agent.driver.observe(tree=False).image
            run.out.mkdir(parents=True, exist_ok=True)
            image.save(run.out / f"test-{'failed' if test_failed else 'finished'}-1.png")
        except Exception:  # noqa: BLE001 - a dead driver has no last screenshot; the run has its frames
            pass
    if agent.recorder is None:
        return
    agent.close("failed" if test_failed else None)
    keep = run.keep == "on" or (run.keep == "retain-on-failure" and test_failed)
    if keep and run.scratch is not None:
        target = run.out / "run"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for child in agent.recorder.path.iterdir():  # the one run directory the agent recorded
            shutil.move(str(child), target / child.name)
        item.user_properties.append(("pixelpilot_run", str(target)))
    if run.scratch is not None:
        shutil.rmtree(run.scratch, ignore_errors=True)


def _explain(rep: pytest.TestReport, call: pytest.CallInfo[None], run: _TestRun) -> None:
    """The failure as the steps that led to it, not a traceback into the framework."""
    from pixelpilot.agent.errors import PixelPilotError
    from pixelpilot.agent.memory import step_table

    steps = run.agent.steps
    where = run.out / "run"
    kept = run.keep != "off"
    lines = [f"pixelpilot: {len(steps)} step(s)" + (f", run kept in {where}" if kept else "")]
    lines.append(step_table(steps))
    last = next((s for s in reversed(steps) if s.frame), None)
    if last is not None and kept:
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
    """One task file, run by the task runner; a failure shows its steps, not a traceback, and keeps its
    run and last frame under ``<output>/<test-id>/`` as a failing test's artifacts are kept."""

    def runtest(self) -> None:
        from pixelpilot.tasks.runner import RunOptions, run_task

        cfg = self.config
        out = Path(cfg.getoption("output")).absolute() / slug(self.nodeid)
        scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-task-"))
        opts = RunOptions(
            output=scratch,
            headed=cfg.getoption("headed") or None,
            model=cfg.getoption("pixelpilot_model"),
            slow_mo=cfg.getoption("slowmo") or None,
        )
        if _KEEPER not in cfg.stash:
            from pixelpilot.tasks.keeper import DriverKeeper

            cfg.stash[_KEEPER] = keeper = DriverKeeper()
            cfg.add_cleanup(keeper.close)
        try:
            result = run_task(self.path, opts, keeper=cfg.stash[_KEEPER])
            task_failed = result.status != "passed"
            record = cfg.getoption("record_run")
            if result.run_dir is not None and (
                record == "on" or (task_failed and record == "retain-on-failure")
            ):
                out.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(out / "run", ignore_errors=True)
                shutil.move(str(result.run_dir), out / "run")
                result.run_dir = out / "run"
                self.user_properties.append(("pixelpilot_run", str(out / "run")))
            elif result.run_dir is not None and task_failed:
                result.run_dir = None  # not kept: say so rather than point at a deleted folder
            shot = cfg.getoption("screenshot")
            last = next((s for s in reversed(result.steps) if s.frame_after or s.frame), None)
            if (
                last is not None
                and result.run_dir is not None
                and (shot == "on" or (task_failed and shot != "off"))
            ):
                frame = result.run_dir / (last.frame_after or last.frame or "")
                if frame.is_file():
                    from pixelpilot.tools.images import open_picture

                    name = f"test-{'failed' if task_failed else 'finished'}-1.png"
                    open_picture(frame, what="the last frame").save(out / name)
                    self.user_properties.append(("screenshot", str(out / name)))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if task_failed:
            raise TaskFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from pixelpilot.agent.errors import PixelPilotError
        from pixelpilot.agent.memory import step_table

        exc = excinfo.value
        if isinstance(exc, TaskFailed):
            r = exc.result
            lines = [f"task {r.task!r} {r.status}: {r.error}", step_table(r.steps)]
            last = next((s for s in reversed(r.steps) if s.frame), None)
            if last is not None and r.run_dir is not None:
                lines.append(f"  last frame: {r.run_dir / last.frame}")
            lines.append(
                f"  report:     {r.run_dir / 'report.html' if r.run_dir else '- (run not kept: --record-run)'}"
            )
            return "\n".join(lines)
        if isinstance(exc, PixelPilotError):
            return f"{type(exc).__name__}: {exc}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"task: {self.name}"


# -- pytest-playwright in use: its browser is Debian's Chromium when it has none of its own ----------
@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    result = yield
    if (
        fixturedef.argname == "browser_type_launch_args"
        and isinstance(result, dict)
        and not result.get("executable_path")
        and not result.get("channel")
        and _pytest_playwright(request.config)
    ):
        own = request.getfixturevalue("playwright").chromium.executable_path
        if not os.path.exists(own):  # `playwright install` was never run: use the system's Chromium
            from pixelpilot.drivers.browser import find_chromium

            result["executable_path"] = find_chromium()
    return result
