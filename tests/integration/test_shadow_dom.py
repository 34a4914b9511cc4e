"""Open shadow roots (web components) are in the UI tree: a button inside one is found by its text,
hit-tested through the shadow boundary, clicked once, and the change inside the component counts as the
click's effect. The component reports clicks to its server, whose count proves it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pixelpilot import Agent
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser

PAGE = """<html><body><h1>Components</h1><like-button></like-button>
<script>
customElements.define('like-button', class extends HTMLElement {
  connectedCallback() {
    const root = this.attachShadow({mode: 'open'});
    root.innerHTML = '<button id=b>Like this post</button> <span id=n>0 likes</span>';
    root.getElementById('b').addEventListener('click', () => {
      fetch('/like', {method: 'POST'});
      root.getElementById('n').textContent = '1 likes';
    });
  }
});
</script></body></html>"""


class Site(Page):
    likes = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send(PAGE)

    def do_POST(self) -> None:  # noqa: N802
        Site.likes += 1
        self.send(b"", status=204)


@pytest.fixture
def site() -> Iterator[str]:
    Site.likes = 0
    with serve(Site) as url:
        yield url + "/"


def test_a_button_inside_a_shadow_root_is_found_and_clicked_once(browser, site):
    agent = Agent(browser)
    agent.open(site)
    rec = agent.click("Like this post")
    assert rec.locator == "ui-tree" and rec.effect == "changed" and not rec.retried
    agent.see("1 likes")
    deadline = time.monotonic() + 5
    while Site.likes < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert Site.likes == 1
