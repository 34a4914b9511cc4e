"""The real web on a server-rendered multi-page app (Pinboard: Flask, Flask-WTF CSRF, SQLite; see
tests/support/pinboard.py), driven once from a task file and once from Python. Every action is proved
by the app's own database — a login, a note with its uploaded bytes, a download, a deletion, a help page
opened in a new tab, a star posted inside a same-origin frame, a vote inside a frame from another site,
a click on a canvas — each exactly once, and each navigation recorded in the step that caused it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot import Agent, BrowserDriver
from pixelpilot.agent.memory import StepRecord
from pixelpilot.tasks import RunOptions, run_task
from tests.support.pinboard import Pinboard, serve_pinboard

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ATTACHMENT = "minutes of the meeting ✓\nline two\n".encode()


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Pinboard]:
    with serve_pinboard(tmp_path / "pinboard.db") as app:
        yield app


GESTURES = [("archive", "board"), ("rename", "Sprint 12"), ("pin", "Note 02"), ("done", "Note 01")]
"""What the board page's gestures post, in order: hover menu, double-click rename, context menu, drag."""


def gestures(board: Pinboard) -> list[tuple[object, ...]]:
    return board.query("select kind, detail from events where kind in ('archive', 'rename', 'pin', 'done')")


def sign_in(agent: Agent) -> StepRecord:
    agent.open("/login")
    agent.click("Username")
    agent.type("alice")
    agent.click("Password")
    agent.type("wonderland")
    return agent.click("Sign in")


def steps_of(res) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(f"{s.kind} {s.instruction} {s.outcome} {s.error or ''}" for s in res.steps)


def test_every_kind_of_web_action_from_a_task_file(board, tmp_path, chromium):
    (tmp_path / "minutes.txt").write_bytes(ATTACHMENT)
    task = tmp_path / "pinboard.yaml"
    task.write_text(
        f"""name: pinboard tour
driver: {{browser: {{base_url: "{board.url}"}}}}
settings: {{wait_timeout: 10}}
steps:
  - open: /notes                      # not signed in: redirected to the login form
  - click: Username
  - type: alice
  - click: Password
  - type: wonderland
  - click: Sign in                    # POST with the CSRF token, redirect, session cookie
  - see: Welcome, alice
  - click: Next page                  # a plain link to another page
  - wait_for: {{url: "page=2"}}
  - see: Page 2 of 3
  - click: "3"
  - see: Note 12
  - click: New note
  - click: Title
  - type: Meeting minutes
  - upload: {{file: minutes.txt, into: Attachment}}
  - click: Save note                  # multipart POST, redirect to the new note
  - see: Note saved
  - click: Download minutes.txt
  - wait_for: {{download: minutes.txt}}
  - click: Help                       # target=_blank: the step follows the new tab
  - see: Ask your administrator
  - close_tab: true
  - click: Widgets
  - click: Add a star                 # inside a same-origin frame: the frame posts and reloads
  - wait_for: "Stars: 1"
  - click: Vote                       # inside a frame from another site: fetch, the frame's DOM changes
  - wait_for: "Votes: 1"
  - click: Drawing pad                # a canvas: only its pixels change
  - click: Board
  - hover: Board actions ▾             # a CSS :hover menu
  - click: Archive the board
  - wait_for: {{response: /board/event}}
  - double_click: My board             # renames in place
  - type: Sprint 12
  - key: Enter
  - wait_for: "rename: Sprint 12"
  - right_click: Note 02               # the page's own context menu
  - click: Pin to top
  - wait_for: "pin: Note 02"
  - drag: {{from: Note 01, to: Done}}
  - wait_for: "done: Note 01"
  - click: Notes
  - dialog: accept
  - click: Delete Note 03             # confirm() accepted: POST, redirect
  - see: Deleted Note 03
"""
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", steps_of(res)
    # the app's own state: each action exactly once
    assert board.events("login") == ["alice"]
    assert board.query(
        "select title, attachment_name, attachment, author from notes where title = ?", "Meeting minutes"
    ) == [("Meeting minutes", "minutes.txt", ATTACHMENT, "alice")]
    assert board.events("download") == ["minutes.txt"]
    assert board.events("help") == [""]
    assert len(board.events("star")) == 1
    assert len(board.events("vote")) == 1
    assert len(board.events("canvas")) == 1
    assert board.events("delete") == ["Note 03"]
    assert "Note 03" not in board.titles() and len(board.titles()) == 12
    assert gestures(board) == GESTURES
    # and the record of it: no click sent twice, every navigation where it happened
    assert not [s for s in res.steps if s.retried]
    by = {s.instruction: s for s in res.steps}
    assert by["Sign in"].navigation["url"] == f"{board.url}/notes"
    assert by["Next page"].navigation["url"] == f"{board.url}/notes?page=2"
    assert by["Save note"].navigation["url"].startswith(f"{board.url}/notes/13")
    assert by["Delete Note 03"].navigation["url"] == f"{board.url}/notes"
    assert by["Delete Note 03"].dialogs[0]["message"] == "Delete the note Note 03?"
    assert by["Delete Note 03"].dialogs[0]["action"] == "accepted"
    assert by["Help"].navigation["new_tab"] == 1 and "/help" in by["Help"].navigation["url"]
    assert (res.run_dir / "downloads" / "minutes.txt").read_bytes() == ATTACHMENT
    meta = json.loads((res.run_dir / "run.json").read_text())
    assert [d["name"] for d in meta["downloads"]] == ["minutes.txt"]
    report = (res.run_dir / "report.html").read_text()  # which page each step acted on, and the files
    assert (
        f"tab 1 · {board.url}/help" in report and '<a href="downloads/minutes.txt">minutes.txt</a>' in report
    )


def test_the_same_from_python_with_a_saved_session(board, tmp_path, chromium):
    state = tmp_path / "alice.json"
    upload = tmp_path / "plan.txt"
    upload.write_bytes(b"the plan\n")
    with BrowserDriver.launch(base_url=board.url) as d:
        agent = Agent(d)
        rec = sign_in(agent)
        assert rec.navigation["url"] == f"{board.url}/notes" and not rec.retried
        agent.save_storage_state(state)
    assert board.events("login") == ["alice"]

    with BrowserDriver.launch(base_url=board.url, storage_state=state) as d:
        agent = Agent(d)
        agent.open("/notes")
        agent.see("Signed in as alice")  # the saved session: no second login
        agent.click("Next page")
        agent.see("Page 2 of 3")
        agent.click("Previous page")
        agent.see("Page 1 of 3")
        agent.open("/notes/new")
        agent.click("Title")
        agent.type("The plan")
        agent.upload(upload, into="Attachment")
        agent.click("Save note")
        agent.click("Download plan.txt")
        assert agent.wait_for(download="plan.txt").result["download"] is True
        rec = agent.click("Help")
        assert rec.navigation["new_tab"] == 1 and "/help" in rec.navigation["url"]
        agent.close_tab()
        agent.click("Widgets")
        star = agent.click("Add a star")
        assert star.effect == "changed" and not star.retried
        agent.wait_for("Stars: 1")
        vote = agent.click("Vote")
        assert vote.effect == "changed" and not vote.retried
        agent.wait_for("Votes: 1")
        pad = agent.click("Drawing pad")
        assert pad.effect == "changed" and not pad.retried
        agent.click("Board")
        agent.hover("Board actions ▾")
        agent.click("Archive the board")
        agent.double_click("My board")
        agent.type("Sprint 12")
        agent.key("Enter")
        agent.wait_for("rename: Sprint 12")
        agent.right_click("Note 02")
        agent.click("Pin to top")
        agent.wait_for("pin: Note 02")
        dragged = agent.drag("Note 01", to="Done")
        assert dragged.effect == "changed" and not dragged.retried
        agent.wait_for("done: Note 01")
        agent.click("Notes")
        agent.on_dialog("dismiss", once=True)  # changed my mind: the note stays
        kept = agent.click("Delete Note 01")
        assert kept.dialogs[0]["action"] == "dismissed" and kept.navigation is None
        agent.on_dialog("accept", once=True)
        gone = agent.click("Delete Note 02")
        assert gone.navigation["url"] == f"{board.url}/notes"
        agent.see("Deleted Note 02")
    assert board.events("login") == ["alice"]  # the second browser never logged in
    assert board.query("select attachment from notes where title = 'The plan'") == [(b"the plan\n",)]
    assert board.events("download") == ["plan.txt"] and board.events("help") == [""]
    assert (len(board.events("star")), len(board.events("vote")), len(board.events("canvas"))) == (1, 1, 1)
    assert board.events("delete") == ["Note 02"] and "Note 01" in board.titles()
    assert gestures(board) == GESTURES


def test_frames_are_in_the_ui_tree_on_the_page(board, tmp_path, chromium):
    """Both frames' elements are in the tree with boxes on the page's screenshot, and hit-testing
    goes through the frame: a button inside a frame covered by the page's own element is not hit."""
    with BrowserDriver.launch(base_url=board.url) as d:
        agent = Agent(d)
        sign_in(agent)
        agent.open("/widgets")
        agent.wait_for("Votes: 0")
        tree = d.ui_tree()
        frames = {n.name: n for n in tree if n.tag == "iframe"}
        star = next(n for n in tree if n.name == "Add a star")
        vote = next(n for n in tree if n.name == "Vote")
        for inner, frame in ((star, frames["Stars"]), (vote, frames["Votes"])):
            assert ":" in inner.ref  # it lives in a frame
            fx, fy, fw, fh = frame.box.as_list()
            x, y, w, h = inner.box.as_list()
            assert fx <= x and fy <= y and x + w <= fx + fw + 1 and y + h <= fy + fh + 1
            point = d.hit_point(inner)
            assert point is not None and fx <= point[0] <= fx + fw and fy <= point[1] <= fy + fh
        # cover the cross-origin frame with an element of the page: its button can no longer be hit
        d.page.evaluate(
            "() => { const f = document.querySelector('iframe[title=Votes]'), r = f.getBoundingClientRect();"
            " const c = document.createElement('div'); c.style.cssText = `position:fixed;left:${r.left}px;"
            "top:${r.top}px;width:${r.width}px;height:${r.height}px;background:#fff`;"
            " document.body.appendChild(c); }"
        )
        vote = next(n for n in d.ui_tree() if n.name == "Vote")
        assert d.hit_point(vote) is None
