"""The pytest plugin, tested with pytester: options, fixtures, artifacts, YAML items, the marker."""

from __future__ import annotations

import pytest

from ..conftest import EXAMPLES

FAKE_CONFTEST = """
import pytest
from pixelpilot.drivers import FakeDriver, FakeWidget

@pytest.fixture
def browser_driver():   # the user's override: the agent fixture runs on the in-memory driver
    d = FakeDriver([FakeWidget("Sign in", (20, 20, 100, 30)), FakeWidget("Hello", (20, 80, 100, 30), role="text")])
    yield d
    d.close()
"""


def test_options_parse_and_reach_the_tests(pytester: pytest.Pytester):
    pytester.makepyfile("""
        def test_opts(pytestconfig):
            o = pytestconfig.getoption
            assert (o("headed"), o("slowmo"), o("output"), o("screenshot")) == (False, 25.0, "out", "on")
            assert (o("pixelpilot_model"), o("pixelpilot_driver"), o("record_run")) == ("openai:http://x/v1", "desktop", "on")
    """)
    res = pytester.runpytest(
        "--slowmo",
        "25",
        "--output",
        "out",
        "--screenshot",
        "on",
        "--pixelpilot-model",
        "openai:http://x/v1",
        "--pixelpilot-driver",
        "desktop",
        "--record-run",
        "on",
    )
    res.assert_outcomes(passed=1)


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
    res = pytester.runpytest()
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    results = pytester.path / "test-results"
    kept = sorted(p.name for p in results.iterdir())
    assert kept == ["test_artifacts_only_on_failure_with_a_readable_message.py-test_fails"]
    run = results / kept[0] / "run"
    assert (
        (run / "report.html").is_file()
        and (run / "steps.jsonl").is_file()
        and any((run / "frames").iterdir())
    )
    assert (results / kept[0] / "screenshot.png").is_file()
    assert "LocateError: no element with the text 'Sign out'" in out
    assert "click     Sign out" in out and "failed" in out and "last frame:" in out and "report.html" in out
    assert "session.py" not in out  # no deep traceback into the framework


def test_record_run_on_keeps_passing_runs_and_off_keeps_none(pytester: pytest.Pytester):
    pytester.makeconftest(FAKE_CONFTEST)
    pytester.makepyfile("def test_ok(agent):\n    agent.click('Sign in')\n")
    pytester.runpytest("--record-run", "on", "--screenshot", "off").assert_outcomes(passed=1)
    assert (
        pytester.path
        / "test-results"
        / "test_record_run_on_keeps_passing_runs_and_off_keeps_none.py-test_ok"
        / "run"
        / "run.json"
    ).is_file()
    pytester.runpytest("--record-run", "off", "--screenshot", "off", "--output", "other").assert_outcomes(
        passed=1
    )
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
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.browser
def test_agent_fixture_with_the_real_browser(pytester: pytest.Pytester, chromium):
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    pytester.makepyfile(f"""
        def test_login(agent):
            agent.open("{demo}")
            agent.type("alice", into="Username")
            agent.type("wonderland", into="Password")
            agent.click("Sign in")
            agent.see("Welcome, alice")

        def test_next_test_starts_blank(agent, browser_driver):
            assert browser_driver.page.url == "about:blank"
    """)
    # a subprocess: Playwright's greenlets do not nest well inside an in-process inner pytest run
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


@pytest.mark.browser
def test_yaml_task_files_are_test_items(pytester: pytest.Pytester, chromium):
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    pytester.makefile(".task.yaml", login=f"steps:\n  - open: {demo}\n  - see: Sign in to Acme\n")
    pytester.makefile(".task.yaml", broken=f"steps:\n  - open: {demo}\n  - click: Sign on\n")
    pytester.makefile(".yaml", ignored="steps:\n  - click: x\n")
    res = pytester.runpytest_subprocess("-v")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    assert "login.task.yaml::login PASSED" in out and "broken.task.yaml::broken FAILED" in out
    assert "task 'broken' failed: no element with the text 'Sign on'" in out
    assert "click     Sign on" in out and "report:" in out
    assert "Traceback" not in out


@pytest.mark.browser
def test_runs_in_parallel_with_pytest_xdist(pytester: pytest.Pytester, chromium):
    """``pytest -n 2``: each worker has its own browser; failures keep their own run directory."""
    pytest.importorskip("xdist")
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
    res = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=2, failed=2)
    out = res.stdout.str()
    assert "'Welcome, alice' is not visible" in out and "no element with the text 'Sign on'" in out
    kept = sorted(p.name for p in (pytester.path / "test-results").iterdir())
    assert len(kept) == 2 and any("wrong_password" in k for k in kept) and any("broken" in k for k in kept)
    for k in kept:  # each failure's own run: report and steps
        assert len(list((pytester.path / "test-results" / k).rglob("report.html"))) == 1
        assert len(list((pytester.path / "test-results" / k).rglob("steps.jsonl"))) == 1
