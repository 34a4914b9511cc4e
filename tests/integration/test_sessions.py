"""Sessions as Playwright users keep them: log in once and save the storage state, start later runs from
it; open: paths relative to base_url; waits for a URL or a network response. The site checks the
session cookie itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pixelpilot import Agent, BrowserDriver
from pixelpilot.agent.errors import StepFailed
from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser


class Site(Page):
    saves = 0

    def _page(self, body: str, *, headers: dict[str, str] | None = None, status: int = 200) -> None:
        data = f"<html><body>{body}</body></html>".encode()
        self.send_response(status)
        for k, v in {
            "Content-Type": "text/html",
            "Content-Length": str(len(data)),
            **(headers or {}),
        }.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        user = (self.headers.get("Cookie") or "").removeprefix("session=") or None
        if self.path == "/login":
            self._page('<form method=post action="/login"><button>Log in as alice</button></form>')
        elif self.path == "/private":
            body = f"<h1>Hello {user}</h1>" if user else "<h1>Please log in</h1>"
            self._page(body + "<button onclick=\"fetch('/api/save', {method: 'POST'})\">Save</button>")
        else:
            self._page("nothing here", status=404)

    def do_POST(self) -> None:  # noqa: N802
        if self.path == "/api/save":
            Site.saves += 1
            self.send_response(204)
            self.end_headers()
            return
        self.send_response(303)
        self.send_header("Set-Cookie", "session=alice; Path=/")
        self.send_header("Location", "/private")
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    Site.saves = 0
    with serve(Site) as url:
        yield url


def test_log_in_once_save_the_state_and_start_from_it(site, tmp_path, chromium):
    state = tmp_path / "alice.json"
    with BrowserDriver.launch(base_url=site) as d:
        agent = Agent(d)
        agent.open("/login")
        agent.click("Log in as alice")
        assert agent.wait_for(url="/private").result["url"] == site + "/private"
        agent.see("Hello alice")
        agent.click("Save")
        assert agent.wait_for(response="/api/save").result["response"] == [site + "/api/save", 204]
        agent.save_storage_state(state)
    assert Site.saves == 1 and "session" in state.read_text()
    task = tmp_path / "private.yaml"
    task.write_text(
        f"driver: {{browser: {{base_url: '{site}', storage_state: alice.json}}}}\n"
        "steps:\n  - open: /private\n  - see: Hello alice\n  - wait_for: {url: private, timeout: 2}\n"
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    assert res.steps[0].navigation is None and res.steps[0].action["url"] == site + "/private"


def test_waits_that_do_not_happen_fail_and_a_missing_state_file_is_named(browser, site, tmp_path, chromium):
    agent = Agent(browser)
    agent.open(site + "/private")
    with pytest.raises(StepFailed, match=r"no url 'elsewhere' within 0\.5 s"):
        agent.wait_for(url="elsewhere", timeout=0.5)
    with pytest.raises(StepFailed, match=r"no response '/api/none' within 0\.5 s"):
        agent.wait_for(response="/api/none", timeout=0.5)
    task = tmp_path / "t.yaml"
    task.write_text("driver: {browser: {storage_state: missing.json}}\nsteps:\n  - open: /x\n")
    from pixelpilot.agent.errors import ConfigError

    with pytest.raises(ConfigError, match="storage_state: no such file"):
        run_task(task, RunOptions(output=tmp_path / "runs"))
