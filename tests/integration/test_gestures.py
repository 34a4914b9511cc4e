"""Pointer gestures as steps — hover, double_click, right_click, drag — with the same locator chain and
hit-testing as click, from Python and from task files; the page reports each event to its server, whose
log proves each happened once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pixelpilot import Agent
from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser

PAGE = """<html><body style="font: 16px sans-serif">
<script>const tell = (what) => fetch('/event', {method: 'POST', body: what});</script>
<div id=menu style="padding:8px;width:120px;background:#eef" onmouseenter="tell('hover menu'); sub.style.display='block'">Products
  <div id=sub style="display:none">Laptops</div></div>
<p><span style="padding:6px;background:#ffd" ondblclick="tell('dblclick title'); this.textContent='Editing title'">Project title</span></p>
<p><span style="padding:6px;background:#dfd" oncontextmenu="event.preventDefault(); tell('contextmenu file'); this.textContent='Menu for report.pdf'">report.pdf</span></p>
<div style="display:flex;gap:40px;margin-top:20px">
  <div id=todo style="width:200px;height:120px;background:#f4f4f4">To do
    <div id=card style="margin:10px;padding:8px;background:#cde;cursor:grab" onmousedown="window.dragging=this">Write the report</div></div>
  <div id=done style="width:200px;height:120px;background:#e4f4e4">Done column</div>
</div>
<script>
document.addEventListener('mouseup', (e) => {
  if (!window.dragging) return;
  const over = document.elementFromPoint(e.clientX, e.clientY);
  if (over && done.contains(over)) { done.appendChild(window.dragging); tell('moved card to done'); }
  window.dragging = null;
});
</script></body></html>"""


class Site(Page):
    log: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send(PAGE)

    def do_POST(self) -> None:  # noqa: N802
        Site.log.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
        self.send_response(204)
        self.end_headers()


def logged(expected: list[str], timeout: float = 5) -> list[str]:
    """The server's log once it holds ``expected`` (the page reports events with fetch: asynchronously)."""
    deadline = time.monotonic() + timeout
    while Site.log != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return Site.log


@pytest.fixture
def site() -> Iterator[str]:
    Site.log = []
    with serve(Site) as url:
        yield url + "/"


def test_gestures_from_python(browser, site):
    agent = Agent(browser)
    agent.open(site)
    agent.hover("Products")
    agent.see("Laptops")
    assert agent.double_click("Project title").locator == "ui-tree"
    agent.see("Editing title")
    agent.right_click("report.pdf")
    agent.see("Menu for report.pdf")
    rec = agent.drag("Write the report", to="Done column")
    assert rec.action["action"] == "drag" and rec.effect == "changed"
    expected = ["hover menu", "dblclick title", "contextmenu file", "moved card to done"]
    assert logged(expected) == expected


def test_gestures_from_a_task_file(browser, site, tmp_path, chromium):
    task = tmp_path / "gestures.yaml"
    task.write_text(
        f"steps:\n  - open: {site}\n  - hover: Products\n  - see: Laptops\n"
        "  - double_click: {text: Project title}\n  - right_click: report.pdf\n"
        "  - drag: {from: Write the report, to: Done column}\n"
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    assert [s.kind for s in res.steps] == ["open", "hover", "see", "double_click", "right_click", "drag"]
    expected = ["hover menu", "dblclick title", "contextmenu file", "moved card to done"]
    assert logged(expected) == expected
