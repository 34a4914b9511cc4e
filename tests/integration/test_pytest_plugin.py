"""The pytest plugin, tested with pytester: options, fixtures, isolation between tests, the model
loaded once, artifacts as pytest-playwright lays them, coexistence with pytest-playwright in both load
orders, YAML items, xdist, and what the plugin costs at start-up in a project that does not use it.

Inner runs that must not see pytest-playwright (installed in this environment) pass ``-p no:playwright``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile

import pytest

import pixelpilot.drivers  # noqa: F401 - loaded once here: pytester's in-process runs cannot import numpy twice

from ..conftest import EXAMPLES

NO_PW = ("-p", "no:playwright")

FAKE_CONFTEST = """
import pytest
from pixelpilot.drivers import FakeDriver, FakeWidget

@pytest.fixture
def browser_driver():   # the user's override: the agent fixture runs on the in-memory driver
    d = FakeDriver([FakeWidget("Sign in", (20, 20, 100, 30)), FakeWidget("Hello", (20, 80, 100, 30), role="text")])
    yield d
    d.close()
"""

SITE = """
import functools, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
import pytest

@pytest.fixture(scope="session")
def site():
    handler = functools.partial(SimpleHTTPRequestHandler, directory={root!r})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{{server.server_address[1]}}"
    server.shutdown()
"""


def slug(nodeid: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", nodeid.lower()).strip("-")


def test_options_parse_and_reach_the_tests(pytester: pytest.Pytester):
    pytester.makepyfile("""
        def test_opts(pytestconfig):
            o = pytestconfig.getoption
            assert (o("headed"), o("slowmo"), o("output"), o("screenshot")) == (False, 25, "out", "on")
            assert (o("tracing"), o("video"), o("browser_channel")) == ("retain-on-failure", "on", "chrome")
            assert o("base_url") == "http://127.0.0.1:1"
            assert (o("pixelpilot_model"), o("pixelpilot_driver"), o("record_run")) == ("openai:http://x/v1", "desktop", "on")
    """)
    args = ["--slowmo", "25", "--output", "out", "--screenshot", "on", "--tracing", "retain-on-failure"]
    args += ["--video", "on", "--browser-channel", "chrome", "--base-url", "http://127.0.0.1:1"]
    args += [
        "--pixelpilot-model",
        "openai:http://x/v1",
        "--pixelpilot-driver",
        "desktop",
        "--record-run",
        "on",
    ]
    pytester.runpytest(*NO_PW, *args).assert_outcomes(passed=1)


def test_artifacts_only_on_failure_with_a_readable_message(pytester: pytest.Pytester):
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile("""
        def test_passes(agent):
            agent.click("Sign in")
            agent.see("Hello")

        def test_fails(agent):
            agent.click("Sign in")
            agent.click("Sign out")
    """)
    (pytester.path / "test-results" / "stale").mkdir(parents=True)  # an earlier run's: cleaned at start
    res = pytester.runpytest(*NO_PW, "--screenshot", "only-on-failure", "--junitxml", "j.xml")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    results = pytester.path / "test-results"
    kept = sorted(p.name for p in results.iterdir())
    assert kept == [slug("test_artifacts_only_on_failure_with_a_readable_message.py::test_fails")]
    run = results / kept[0] / "run"
    assert (
        (run / "report.html").is_file()
        and (run / "steps.jsonl").is_file()
        and any((run / "frames").iterdir())
    )
    assert (results / kept[0] / "test-failed-1.png").is_file()
    assert "LocateError: no element with the text 'Sign out'" in out
    assert "click     Sign out" in out and "failed" in out and "last frame:" in out and "report.html" in out
    assert "session.py" not in out  # no deep traceback into the framework
    props = [p.attrib for p in ET.parse(pytester.path / "j.xml").getroot().iter("property")]
    assert props and all(os.path.exists(p["value"]) for p in props)  # JUnit points at files that exist


def test_record_run_on_keeps_passing_runs_and_off_keeps_none(pytester: pytest.Pytester):
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile("def test_ok(agent):\n    agent.click('Sign in')\n")
    pytester.runpytest(*NO_PW, "--record-run", "on").assert_outcomes(passed=1)
    kept = (
        pytester.path
        / "test-results"
        / slug("test_record_run_on_keeps_passing_runs_and_off_keeps_none.py::test_ok")
    )
    assert (kept / "run" / "run.json").is_file()
    pytester.runpytest(*NO_PW, "--record-run", "off", "--output", "other").assert_outcomes(passed=1)
    assert not (pytester.path / "other").exists()


def test_marker_sets_per_test_settings(pytester: pytest.Pytester):
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile("""
        import pytest
        from pixelpilot.agent.models import ScriptedModel

        WAIT = '<tool_call>\\n{"name": "computer_use", "arguments": {"action": "wait", "time": %s}}\\n</tool_call>'

        @pytest.mark.pixelpilot(max_steps=3)
        def test_budget(agent):
            agent.model = ScriptedModel([WAIT % (i / 1000) for i in range(10)])
            result = agent.run("wait a bit")
            assert result.status == "budget" and len(result.steps) == 3
    """)
    pytester.runpytest(*NO_PW).assert_outcomes(passed=1)


def test_the_model_is_loaded_once_for_every_test_of_a_session(pytester: pytest.Pytester):
    pytester.makeconftest(
        FAKE_CONFTEST
        + """
from pixelpilot.agent import models
from pixelpilot.agent.models import ScriptedModel

LOADS = []
_real = models.load_model

def counting(spec, **kw):
    LOADS.append(spec)
    return ScriptedModel(['{"result": true, "reason": "ok"}'] * 100, name=spec)

models.load_model = counting

def pytest_sessionfinish(session):
    open("loads.json", "w").write(__import__("json").dumps(LOADS))
    models.load_model = _real  # the inner session runs in this process: leave the loader as it was
"""
    )
    pytester.makepyfile("""
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_check(agent, n):
            assert agent.check("the page is fine")

        @pytest.mark.pixelpilot(model="other-model")
        def test_other(agent):
            assert agent.model.name == "other-model"
    """)
    pytester.runpytest(*NO_PW, "--pixelpilot-model", "the-model").assert_outcomes(passed=13)
    assert json.loads((pytester.path / "loads.json").read_text()) == ["the-model", "other-model"]


def _site(pytester: pytest.Pytester) -> None:
    root = pytester.path / "www"
    root.mkdir()
    (root / "index.html").write_text(
        "<html><body><h1 id=h>Start</h1><button onclick=\"localStorage.setItem('who','alice');"
        "document.cookie='session=alice; path=/';document.getElementById('h').textContent='Logged in'\">Log in</button>"
        "<p id=state></p><script>document.getElementById('state').textContent = "
        "'storage=' + (localStorage.getItem('who') || 'none') + ' cookie=' + (document.cookie || 'none')</script>"
        "</body></html>"
    )
    pytester.makeconftest(SITE.format(root=str(root)))


@pytest.mark.browser
def test_each_test_gets_a_fresh_browser_context(pytester: pytest.Pytester, chromium):
    """A login in one test (cookie, localStorage) is invisible to the next: a context per test, one
    browser per session, as pytest-playwright does."""
    _site(pytester)
    pytester.makepyfile("""
        def test_a_logs_in(agent, site):
            agent.open(site + "/index.html")
            agent.see("storage=none cookie=none")
            agent.click("Log in")
            agent.see("Logged in")
            agent.open(site + "/index.html")
            agent.see("storage=alice cookie=session=alice")   # it stuck within the test

        def test_b_starts_fresh(agent, site, context):
            agent.open(site + "/index.html")
            agent.see("storage=none cookie=none")
            assert context.cookies() == []

        def test_c_same_browser(browser_driver, browser):
            assert browser_driver.page.context.browser is browser
    """)
    pytester.runpytest_subprocess(*NO_PW).assert_outcomes(passed=3)


@pytest.mark.browser
def test_base_url_tracing_and_channel_without_pytest_playwright(pytester: pytest.Pytester, chromium):
    _site(pytester)
    pytester.makepyfile("""
        def test_relative_open(agent):
            agent.open("/index.html")          # resolved against --base-url by the context
            agent.see("Start")

        def test_fails(agent):
            agent.open("/index.html")
            agent.see("Not on this page")
    """)
    # the site fixture's port is only known inside the run: serve the same folder here instead
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(pytester.path / "www"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        res = pytester.runpytest_subprocess(
            *NO_PW, "--base-url", base, "--tracing", "retain-on-failure", "--video", "retain-on-failure"
        )
        res.assert_outcomes(passed=1, failed=1)
        results = pytester.path / "test-results"
        failed = slug("test_base_url_tracing_and_channel_without_pytest_playwright.py::test_fails")
        traces = sorted(p.relative_to(results).as_posix() for p in results.rglob("trace.zip"))
        assert traces == [failed + "/trace.zip"]
        videos = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.webm"))
        assert videos == [failed + "/video.webm"]
        import cv2

        video = cv2.VideoCapture(str(results / videos[0]))  # a real video of the page, 1280x800
        ok, frame = video.read()
        assert ok and frame.shape[:2] == (800, 1280) and video.get(cv2.CAP_PROP_FRAME_COUNT) >= 1
        chan = pytester.runpytest_subprocess(
            *NO_PW, "--base-url", base, "--browser-channel", "msedge", "-k", "relative"
        )
        assert chan.ret != 0 and "msedge" in chan.stdout.str()  # the channel reached Playwright's launch
    finally:
        server.shutdown()


PW_TEST = """
def test_steps_in_the_tests_page(agent, page):
    agent.open("/index.html")
    agent.click("Log in")
    agent.see("Logged in")
    assert agent.driver.page is page       # the agent drives pytest-playwright's page

def test_fails(agent, page):
    agent.open("/index.html")
    agent.click("Log in")
    agent.see("Not on this page")
"""


@pytest.mark.browser
@pytest.mark.parametrize("order", ["playwright-first", "pixelpilot-first"])
def test_with_pytest_playwright_in_either_load_order(pytester: pytest.Pytester, chromium, order):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    _site(pytester)
    pytester.makepyfile(PW_TEST)
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(SimpleHTTPRequestHandler, directory=str(pytester.path / "www"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    plugins = ["-p", "pytest_playwright.pytest_playwright", "-p", "pixelpilot.tasks.pytest_plugin"]
    if order == "pixelpilot-first":
        plugins = plugins[2:] + plugins[:2]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        channel = subprocess.run(  # pytest-playwright's --browser-channel reaches its launch
            [
                sys.executable,
                "-m",
                "pytest",
                *plugins,
                "-p",
                "no:cacheprovider",
                "--base-url",
                base,
                "--browser-channel",
                "msedge",
                "-k",
                "steps",
            ],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert channel.returncode != 0 and "msedge" in channel.stdout + channel.stderr
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *plugins,
                "-p",
                "no:cacheprovider",
                "--base-url",
                base,
                "--tracing",
                "retain-on-failure",
            ],
            cwd=pytester.path,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        server.shutdown()
    out = res.stdout + res.stderr
    assert "already added" not in out and "1 failed, 1 passed" in out, out[-3000:]
    results = pytester.path / "test-results"
    failed = results / slug("test_with_pytest_playwright_in_either_load_order.py::test_fails[chromium]")
    assert sorted(p.name for p in results.iterdir()) == [failed.name]  # retain-on-failure: the failure only
    assert (failed / "trace.zip").is_file() and (failed / "run" / "report.html").is_file()
    with zipfile.ZipFile(failed / "trace.zip") as z:  # our clicks are in Playwright's own trace
        trace = "".join(z.read(n).decode(errors="replace") for n in z.namelist() if n.endswith(".trace"))
    assert '"method":"mouseClick"' in trace or '"method":"mouseDown"' in trace


@pytest.mark.browser
def test_yaml_task_files_are_test_items(pytester: pytest.Pytester, chromium):
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    pytester.makefile(".task.yaml", login=f"steps:\n  - open: {demo}\n  - see: Sign in to Acme\n")
    pytester.makefile(".task.yaml", broken=f"steps:\n  - open: {demo}\n  - click: Sign on\n")
    pytester.makefile(".yaml", ignored="steps:\n  - click: x\n")
    res = pytester.runpytest_subprocess(
        *NO_PW, "-v", "--screenshot", "only-on-failure", "--junitxml", "j.xml"
    )
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    assert "login.task.yaml::login PASSED" in out and "broken.task.yaml::broken FAILED" in out
    assert "task 'broken' failed: no element with the text 'Sign on'" in out
    assert "click     Sign on" in out and "report:" in out
    assert "Traceback" not in out
    results = pytester.path / "test-results"
    (kept,) = results.iterdir()
    assert kept.name == slug("broken.task.yaml::broken")
    assert (kept / "run" / "report.html").is_file() and (kept / "test-failed-1.png").is_file()
    props = [p.attrib for p in ET.parse(pytester.path / "j.xml").getroot().iter("property")]
    assert {p["name"] for p in props} == {"pixelpilot_run", "screenshot"}
    assert all(os.path.exists(p["value"]) for p in props)


@pytest.mark.browser
def test_runs_in_parallel_with_pytest_xdist(pytester: pytest.Pytester, chromium):
    """``pytest -n 2``: each worker has its own browser; failures keep their own run directory."""
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    pytester.makepyfile(f"""
        import os

        def test_login(agent):
            agent.open("{demo}")
            agent.type("alice", into="Username")
            agent.type("wonderland", into="Password")
            agent.click("Sign in")
            agent.see("Welcome, alice")
            assert os.environ.get("PYTEST_XDIST_WORKER")

        def test_wrong_password(agent):
            agent.open("{demo}")
            agent.type("alice", into="Username")
            agent.click("Sign in")
            agent.see("Welcome, alice")
    """)
    pytester.makefile(".task.yaml", title=f"steps:\n  - open: {demo}\n  - see: Sign in to Acme\n")
    pytester.makefile(".task.yaml", broken=f"steps:\n  - open: {demo}\n  - click: Sign on\n")
    res = pytester.runpytest_subprocess(*NO_PW, "-n", "2")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    assert "'Welcome, alice' is not visible" in out and "no element with the text 'Sign on'" in out
    kept = sorted(p.name for p in (pytester.path / "test-results").iterdir())
    assert len(kept) == 2 and any("wrong-password" in k for k in kept) and any("broken" in k for k in kept)
    for k in kept:  # each failure's own run: report and steps
        assert len(list((pytester.path / "test-results" / k).rglob("report.html"))) == 1
        assert len(list((pytester.path / "test-results" / k).rglob("steps.jsonl"))) == 1


def test_the_plugin_costs_little_in_a_project_that_does_not_use_it(pytester: pytest.Pytester):
    """pytest imports the plugin in every project of the environment: it must not import the Agent,
    and importing it (pytest itself already imported, as it is then) takes at most 50 ms."""
    pytester.makeconftest(
        "import sys\n"
        "def pytest_sessionfinish(session):\n"
        "    open('mods.txt', 'w').write(' '.join(sorted(m for m in sys.modules if m.startswith('pixelpilot'))))\n"
    )
    pytester.makepyfile("def test_nothing():\n    assert 1\n")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    loaded = (pytester.path / "mods.txt").read_text().split()
    assert "pixelpilot.tasks.pytest_plugin" in loaded  # it was loaded ...
    assert not [m for m in loaded if m.startswith(("pixelpilot.agent", "pixelpilot.drivers"))]  # ... alone
    timing = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pixelpilot.tasks.pytest_plugin"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    (cumulative,) = [
        int(m.group(1))
        for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)", timing.stderr)
        if m.group(2) == "pixelpilot.tasks.pytest_plugin"
    ]
    assert cumulative / 1000 <= 50, f"importing the plugin took {cumulative / 1000:.1f} ms"
