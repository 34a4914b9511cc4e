"""pytest-playwright's browser fixtures, with the same names and meaning, for projects that do not use
pytest-playwright (registered by :mod:`pixelpilot.tasks.pytest_plugin` only then): one browser per
worker, a fresh context per test, traces, videos and screenshots kept under ``<output>/<test-id>/``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.drivers.screencast import Screencast
from pixelpilot.tasks.pytest_plugin import failed, slug


@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig: pytest.Config) -> dict[str, Any]:
    args: dict[str, Any] = {"headless": not pytestconfig.getoption("headed")}
    channel = pytestconfig.getoption("browser_channel")
    if channel:
        args["channel"] = channel  # the channel names the browser: no executable path of ours
    else:
        from pixelpilot.drivers.browser import find_chromium

        args["executable_path"] = find_chromium()
    if pytestconfig.getoption("slowmo"):
        args["slow_mo"] = pytestconfig.getoption("slowmo")
    return args


@pytest.fixture(scope="session")
def browser_context_args(base_url: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
    if base_url:
        args["base_url"] = base_url
    return args


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    from pixelpilot.drivers.browser import playwright_session

    with playwright_session() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Any, browser_type_launch_args: dict[str, Any]) -> Iterator[Any]:
    """One browser per worker (per session without xdist)."""
    from pixelpilot.drivers.browser import CHROMIUM_ARGS

    launch = dict(browser_type_launch_args)
    launch["args"] = [*CHROMIUM_ARGS, *launch.get("args", [])]
    browser = playwright.chromium.launch(**launch)
    yield browser
    browser.close()


@pytest.fixture
def output_path(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> str:
    return str(Path(pytestconfig.getoption("output")).absolute() / slug(request.node.nodeid))


@pytest.fixture
def context(
    browser: Any,
    browser_context_args: dict[str, Any],
    pytestconfig: pytest.Config,
    request: pytest.FixtureRequest,
    output_path: str,
) -> Iterator[Any]:
    """A fresh browser context for the test: nothing of an earlier test's state reaches it."""
    args = dict(browser_context_args)
    marker = next(request.node.iter_markers("browser_context_args"), None)
    args.update(marker.kwargs if marker else {})
    scratch = Path(tempfile.mkdtemp(prefix="pixelpilot-artifacts-"))
    context = browser.new_context(**args)
    videos: list[Screencast] = []
    if (
        pytestconfig.getoption("video") != "off"
    ):  # Chromium's screencast: Playwright's recorder needs its ffmpeg
        context.on("page", lambda page: videos.append(Screencast(page).start()))
    if pytestconfig.getoption("tracing") != "off":
        context.tracing.start(title=slug(request.node.nodeid), screenshots=True, snapshots=True, sources=True)
    yield context
    _close(context, request.node, pytestconfig, Path(output_path), scratch, videos)


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def _close(
    context: Any, item: pytest.Item, config: pytest.Config, out: Path, scratch: Path, videos: list[Screencast]
) -> None:
    """Trace, screenshots and videos of a finished test, kept as pytest-playwright keeps them."""
    test_failed = failed(item)

    def keep(option: str, on_failure: str) -> bool:
        value = config.getoption(option)
        return bool(value == "on" or (test_failed and value == on_failure))

    try:
        if config.getoption("tracing") != "off":
            trace = scratch / "trace.zip"
            context.tracing.stop(path=str(trace))
            if keep("tracing", "retain-on-failure"):
                out.mkdir(parents=True, exist_ok=True)
                shutil.move(str(trace), out / "trace.zip")
        if keep("screenshot", "only-on-failure"):
            status = "failed" if test_failed else "finished"
            for n, page in enumerate(context.pages, 1):
                out.mkdir(parents=True, exist_ok=True)
                page.screenshot(
                    path=str(out / f"test-{status}-{n}.png"),
                    full_page=config.getoption("full_page_screenshot"),
                    timeout=5000,
                )
        for video in videos:
            video.stop()
        context.close()
        if keep("video", "retain-on-failure"):
            for n, video in enumerate(videos, 1):
                out.mkdir(parents=True, exist_ok=True)
                video.save(out / ("video.webm" if len(videos) == 1 else f"video-{n}.webm"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
