"""A click that navigates is an effect: the driver waits for the new document, records where it went,
and never repeats the action; a navigation that fails fails the step with the URL and the status.

The site here is a server-rendered multi-page app on http.server: links, a form whose POST answers with a
redirect (its own log proves the POST arrived exactly once), a broken link, a same-document link."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest

from pixelpilot import Agent, read_run
from pixelpilot.agent.errors import StepFailed
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser


class Site(Page):
    posts: list[tuple[str, dict[str, list[str]]]] = []
    dead = 0
    """A port nothing listens on."""

    def _page(self, body: str, status: int = 200) -> None:
        title = body.split("<h1>", 1)[-1].split("</h1>", 1)[0]
        data = f"<html><head><title>{title}</title></head><body>{body}</body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        pages = {
            "/": '<h1>First page</h1><a href="/next">Go next</a> <a href="/missing">Broken link</a> '
            f'<a href="#details">Details</a> <a href="http://127.0.0.1:{Site.dead}/">Dead server</a>'
            '<form method=post action="/login"><label for=u>User</label><input id=u name=user>'
            "<button>Log in</button></form><h2 id=details>Details here</h2>"
            '<a href="/next" target="_blank">Open in a new tab</a>'
            '<form method=post action="/report" target="_blank"><button>Report in a new tab</button></form>',
            "/next": '<h1>Second page</h1><a href="/">Back home</a>',
            "/welcome": "<h1>Welcome</h1>",
        }
        if self.path in pages:
            self._page(pages[self.path])
        else:
            self._page("<h1>Not found</h1>", 404)

    def do_POST(self) -> None:  # noqa: N802
        n = int(self.headers.get("Content-Length", 0))
        Site.posts.append((self.path, parse_qs(self.rfile.read(n).decode())))
        self.send_response(303)
        self.send_header("Location", "/welcome")
        self.end_headers()


@pytest.fixture
def site() -> Iterator[str]:
    Site.posts = []
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        Site.dead = s.getsockname()[1]
    with serve(Site) as url:
        yield url


def test_a_link_click_navigates_once_and_records_where_it_went(browser, site, tmp_path):
    with Agent(browser, output=tmp_path, task="nav") as agent:
        agent.open(site + "/")
        rec = agent.click("Go next")
        assert rec.outcome == "passed" and rec.effect == "changed" and not rec.retried
        assert rec.navigation == {"url": site + "/next", "status": 200, "error": None}
        agent.see("Second page")
        agent.click("Back home")
        agent.see("First page")
    steps = read_run(agent.recorder.path).steps
    assert steps[1].navigation is not None and steps[1].navigation["url"] == site + "/next"


def test_a_form_post_with_redirect_is_sent_exactly_once(browser, site):
    agent = Agent(browser)
    agent.open(site + "/")
    agent.type("alice", into="User")
    rec = agent.click("Log in")
    assert not rec.retried and rec.navigation is not None and rec.navigation["url"] == site + "/welcome"
    agent.see("Welcome")
    assert Site.posts == [("/login", {"user": ["alice"]})]  # the app's own record: one POST


def test_a_navigation_that_fails_fails_the_step_with_url_and_status(browser, site):
    agent = Agent(browser)
    agent.open(site + "/")
    with pytest.raises(StepFailed, match=r"opened http://127\.0\.0\.1:\d+/missing, which answered HTTP 404"):
        agent.click("Broken link")
    agent.open(site + "/")
    with pytest.raises(
        StepFailed, match=r"navigation to http://127\.0\.0\.1:\d+/ that failed: net::ERR_CONNECTION_REFUSED"
    ):
        agent.click("Dead server")
    assert agent.steps[-1].outcome == "failed" and not agent.steps[-1].retried


def test_a_same_document_link_is_an_effect(browser, site):
    agent = Agent(browser)
    agent.open(site + "/")
    rec = agent.click("Details")
    assert rec.effect == "changed" and not rec.retried
    assert rec.navigation is not None and rec.navigation["url"].endswith("/#details")


def test_a_link_to_a_new_tab_is_followed_and_tabs_can_be_switched_and_closed(browser, site, tmp_path):
    """target=_blank: the step switches to the new tab (recorded); switch_tab and close_tab go back."""
    from pixelpilot.drivers.browser import BrowserDriver

    with BrowserDriver.launch() as d:  # its own browser: the shared one keeps a single tab
        agent = Agent(d, output=tmp_path, task="tabs")
        agent.open(site + "/")
        rec = agent.click("Open in a new tab")
        assert rec.outcome == "passed" and not rec.retried
        assert rec.navigation is not None and rec.navigation["new_tab"] == 1
        see = agent.see("Second page")
        assert see.tab == {"index": 1, "url": site + "/next"}
        assert agent.switch_tab("First").result["tab"]["index"] == 0
        agent.see("First page")
        agent.switch_tab("/next")  # part of the URL
        agent.see("Second page")
        assert agent.close_tab().result["tab"] == {"index": 0, "url": site + "/"}
        agent.see("First page")
        with pytest.raises(Exception, match="no tab with 'nowhere'"):
            agent.switch_tab("nowhere")
        agent.close()
    steps = read_run(agent.recorder.path).steps
    assert [s.tab["index"] for s in steps if s.kind == "see"] == [1, 0, 1, 0]


def test_a_form_posting_into_a_new_tab_is_followed_and_posted_once(browser, site):
    from pixelpilot.drivers.browser import BrowserDriver

    with BrowserDriver.launch() as d:
        agent = Agent(d)
        agent.open(site + "/")
        rec = agent.click("Report in a new tab")
        assert rec.navigation is not None and rec.navigation["new_tab"] == 1 and not rec.retried
        agent.see("Welcome")
    assert [p for p, _ in Site.posts] == ["/report"]
