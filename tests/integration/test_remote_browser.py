"""Browsers that run elsewhere: a Playwright browser server (``playwright run-server`` from the installed
Playwright package, the protocol grids and browser services speak) reached with ``connect``, and a
Chromium started with ``--remote-debugging-port`` reached over CDP. The same tasks pass through both —
the demo from the CLI (``--browser-endpoint``) and a ticket filed in Trac from a task file's
``browser: {connect|cdp: ...}``, proved by Trac's database."""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from pixelpilot.agent import read_run
from pixelpilot.drivers.browser import CHROMIUM_ARGS, BrowserDriver, find_chromium
from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import free_port, server_process

from ..conftest import EXAMPLES
from .test_cli_runs import cli, only_run
from .test_trac import rows, trac  # noqa: F401 - the Trac fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``playwright run-server``: it launches a browser per client, with the launch options the client
    sends (``--unsafe`` lets them name the Chromium to start: Debian's, as everywhere in the suite)."""
    port = free_port()
    log = tmp_path_factory.mktemp("pwserver") / "server.log"
    cmd = [sys.executable, "-m", "playwright", "run-server", "--host", "127.0.0.1", "--port", str(port)]
    with server_process([*cmd, "--unsafe"], f"http://127.0.0.1:{port}/", log):
        options = {"executablePath": find_chromium(), "args": list(CHROMIUM_ARGS), "headless": True}
        yield f"ws://127.0.0.1:{port}/?launch-options=" + urllib.parse.quote(json.dumps(options))


@pytest.fixture(scope="module")
def devtools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Chromium someone else started, with its DevTools port open."""
    port = free_port()
    where = tmp_path_factory.mktemp("cdp")
    cmd = [
        find_chromium(),
        "--headless",
        f"--remote-debugging-port={port}",
        f"--user-data-dir={where / 'profile'}",
        *CHROMIUM_ARGS,
        "about:blank",
    ]
    with server_process(cmd, f"http://127.0.0.1:{port}/json/version", where / "chromium.log"):
        yield f"http://127.0.0.1:{port}"


def pages(devtools_url: str) -> list[str]:
    with urllib.request.urlopen(devtools_url + "/json/list", timeout=5) as r:
        return [t["url"] for t in json.load(r) if t["type"] == "page"]


@pytest.fixture(params=["connect", "cdp"])
def endpoint(request: pytest.FixtureRequest) -> tuple[str, str]:
    fixture = "browser_server" if request.param == "connect" else "devtools"
    return request.param, request.getfixturevalue(fixture)


def test_the_demo_runs_in_a_remote_browser_from_the_cli(endpoint, tmp_path):
    kind, url = endpoint
    res = cli("run", str(EXAMPLES / "demo.yaml"), "--output", str(tmp_path), "--browser-endpoint", url)
    assert res.returncode == 0, res.stdout + res.stderr
    run = read_run(only_run(tmp_path))
    assert run.meta["status"] == "passed" and len(run.steps) == 19
    assert run.meta["browser_endpoint"].startswith(url.split("?")[0])
    if kind == "cdp":  # someone else's Chromium: still running, and our page is gone with our context
        assert "demo_app" not in " ".join(pages(url))


def test_a_task_file_names_the_remote_browser_and_trac_records_the_ticket(endpoint, trac, tmp_path):  # noqa: F811
    kind, url = endpoint
    trac_url, db = trac
    summary = f"Filed through {kind}"
    task = tmp_path / "remote.yaml"
    task.write_text(
        f"""name: remote {kind}
settings: {{wait_timeout: 15}}
driver: {{browser: {{base_url: "{trac_url}", {kind}: "{url}"}}}}
steps:
  - open: /newticket
  - type: {{text: "{summary}", into: Summary}}
  - click: Create ticket
  - see: "{summary}"
"""
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    assert rows(db, f"SELECT count(*) FROM ticket WHERE summary = '{summary}'") == [(1,)]


def test_an_endpoint_that_does_not_answer_is_an_environment_error_without_its_token(tmp_path):
    port = free_port()  # nothing listens there
    task = tmp_path / "t.yaml"
    task.write_text(f"steps:\n  - open: {(EXAMPLES / 'demo_app' / 'index.html').as_uri()}\n")
    for url in (f"ws://127.0.0.1:{port}/?token=hunter22", f"http://127.0.0.1:{port}"):
        res = cli("run", str(task), "--output", str(tmp_path / "r"), "--browser-endpoint", url)
        assert res.returncode == 3, res.stdout + res.stderr
        assert "cannot reach the browser at" in res.stdout and f"127.0.0.1:{port}" in res.stdout
        assert "hunter22" not in res.stdout + res.stderr and "Traceback" not in res.stderr
    res = cli("run", str(task), "--output", str(tmp_path / "r"), "--browser-endpoint", "ftp://x")
    assert res.returncode == 2 and "expected ws://host:port" in res.stdout
    task.write_text("driver: {browser: {connect: ws://a:1, cdp: http://b:2}}\nsteps:\n  - see: x\n")
    res = cli("run", str(task), "--output", str(tmp_path / "r"))
    assert res.returncode == 2 and "not both" in res.stdout


def test_python_drives_a_remote_browser_and_leaves_a_cdp_browser_running(devtools):
    before = pages(devtools)
    with BrowserDriver.launch(cdp=devtools, viewport=(800, 600)) as d:
        d.goto((EXAMPLES / "demo_app" / "index.html").as_uri())
        screen = d.observe()
        assert screen.image.size == (800, 600)
        assert any(n.name == "Sign in" for n in screen.tree)
        assert len(pages(devtools)) == len(before) + 1
    assert pages(devtools) == before  # our page closed; the browser still answers
