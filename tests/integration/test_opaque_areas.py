"""Canvas and frames: the DOM does not show what a click did there, so the driver judges the click by
the pixels where it landed — a click that drew something (or changed a frame) is never sent twice.
The pages report each click to their server, whose count proves it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pixelpilot import Agent
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser

PAGE = """<html><body>
<canvas id=board aria-label="Drawing board" width=300 height=200 style="border:1px solid #999"></canvas>
<iframe id=inner style="width:320px;height:120px" srcdoc="<button onclick=&quot;fetch('/frame-click',{method:'POST'});this.textContent='Pressed inside'&quot; style='font-size:24px'>Inner button</button>"></iframe>
<script>
const c = document.getElementById('board'), g = c.getContext('2d');
g.font = '24px sans-serif'; g.fillText('Canvas', 110, 100);
c.addEventListener('click', (e) => {
  g.fillStyle = 'red'; g.beginPath(); g.arc(e.offsetX, e.offsetY, 12, 0, 7); g.fill();
  fetch('/canvas-click', {method: 'POST'});
});
</script></body></html>"""


class Site(Page):
    clicks: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send(PAGE)

    def do_POST(self) -> None:  # noqa: N802
        Site.clicks.append(self.path)
        self.send_response(204)
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    Site.clicks = []
    with serve(Site) as url:
        yield url + "/"


def clicks(expected: list[str], timeout: float = 5) -> list[str]:
    deadline = time.monotonic() + timeout
    while sorted(Site.clicks) != sorted(expected) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # and nothing more comes
    return Site.clicks


def test_a_click_on_a_canvas_is_judged_by_its_pixels_and_sent_once(browser, site):
    agent = Agent(browser)
    agent.open(site)
    rec = agent.click("Canvas")  # text drawn on the canvas: found on screen (OCR)
    assert rec.effect == "changed" and not rec.retried
    assert clicks(["/canvas-click"]) == ["/canvas-click"]


def test_a_click_inside_a_frame_is_sent_once(browser, site):
    agent = Agent(browser)
    agent.open(site)
    rec = agent.click("Inner button")  # in the frame's document: found in the UI tree, inside the frame
    assert rec.effect == "changed" and not rec.retried
    assert clicks(["/frame-click"]) == ["/frame-click"]
