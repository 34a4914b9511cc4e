"""JavaScript dialogs are answered by a policy and recorded in the step that opened them — never
silently. The site's own log proves what the answer did (a confirmed delete happens once, a dismissed one
never, a prompt's text arrives)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pixelpilot import Agent, read_run
from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser

PAGE = """<html><body><h1>Items</h1><p id=state>item 1</p>
<button onclick="if (confirm('Delete item 1?')) fetch('/delete', {method: 'POST'}).then(() => state.textContent = 'deleted')">Delete</button>
<button onclick="const n = prompt('New name?', 'item 1'); fetch('/rename', {method: 'POST', body: n ?? '(none)'}).then(() => state.textContent = 'renamed ' + n)">Rename</button>
<button onclick="alert('Saved'); state.textContent = 'saved'">Save</button>
</body></html>"""


class Site(Page):
    log: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send(PAGE)

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        Site.log.append((self.path, self.rfile.read(n).decode()))
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    Site.log = []
    with serve(Site) as url:
        yield url + "/"


def test_dialogs_are_dismissed_by_default_and_recorded(browser, site, tmp_path):
    with Agent(browser, output=tmp_path, task="dialogs") as agent:
        agent.open(site)
        rec = agent.click("Delete")
        assert rec.dialogs == [
            {"type": "confirm", "message": "Delete item 1?", "default": None, "action": "dismissed"}
        ]
        agent.see("item 1")
    assert Site.log == []  # dismissed: nothing deleted
    (step,) = [s for s in read_run(agent.recorder.path).steps if s.kind == "click"]
    assert step.dialogs[0]["action"] == "dismissed"
    assert "confirm “Delete item 1?”: dismissed" in (agent.recorder.path / "report.html").read_text()


def test_accept_once_then_back_to_the_policy(browser, site):
    agent = Agent(browser)
    agent.open(site)
    agent.on_dialog("accept", once=True)
    assert agent.click("Delete").dialogs[0]["action"] == "accepted"
    agent.wait_for("deleted", timeout=5)
    agent.open(site)
    assert agent.click("Delete").dialogs[0]["action"] == "dismissed"  # once: the next one is dismissed again
    agent.on_dialog(("accept", "renamed item"))
    assert agent.click("Rename").dialogs[0]["action"] == "accepted with 'renamed item'"
    agent.wait_for("renamed renamed item", timeout=5)
    agent.on_dialog("dismiss")
    assert Site.log == [("/delete", ""), ("/rename", "renamed item")]  # the delete happened exactly once


def test_dialogs_from_a_task_file(browser, site, tmp_path, chromium):
    task = tmp_path / "dialogs.yaml"
    task.write_text(
        "settings: {dialog: accept}\n"
        f"steps:\n  - open: {site}\n  - click: Save\n  - see: saved\n"
        "  - dialog: {accept: from yaml}\n  - click: Rename\n  - wait_for: renamed from yaml\n"
        "  - dialog: dismiss\n  - click: Delete\n  - see: renamed from yaml\n"
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    dialogs = [d for s in res.steps for d in s.dialogs]
    assert [(d["type"], d["action"]) for d in dialogs] == [
        ("alert", "accepted"),
        ("prompt", "accepted with 'from yaml'"),
        ("confirm", "dismissed"),
    ]
    assert Site.log == [("/rename", "from yaml")]
    steps = [json.loads(line) for line in (res.run_dir / "steps.jsonl").read_text().splitlines()]
    assert sum(len(s["dialogs"]) for s in steps) == 3
