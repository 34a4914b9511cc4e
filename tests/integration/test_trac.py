"""An unmodified third-party web application: Trac 1.6 (PyPI ``trac``, its own SQLite database),
installed by scripts/webapps_env.sh into .venv-webapps and started by the suite on loopback with
``tracd``. A task file files a ticket through the New Ticket form (Trac's own form token), finds it
again through View Tickets → Active Tickets, comments on it, and creates a wiki page; Trac's database
proves each was written exactly once, with what was typed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import free_port, server_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VENV = Path(__file__).resolve().parents[2] / ".venv-webapps"


@pytest.fixture(scope="module")
def trac(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tracd = Path(os.environ.get("PIXELPILOT_TRACD", VENV / "bin" / "tracd"))
    if not tracd.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Trac is missing on CI at {tracd}: bash scripts/webapps_env.sh")
        pytest.skip("Trac is not installed (bash scripts/webapps_env.sh)")
    env = tmp_path_factory.mktemp("trac") / "project"
    admin = [str(tracd.parent / "trac-admin"), str(env)]
    for args in (
        ["initenv", "Demo project", "sqlite:db/trac.db"],
        # anonymous visitors may file and edit, as on many public Tracs (no login form without a plugin)
        ["permission", "add", "anonymous", "TICKET_CREATE", "TICKET_APPEND", "WIKI_CREATE", "WIKI_MODIFY"],
    ):
        res = subprocess.run([*admin, *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
    url = f"http://127.0.0.1:{free_port()}"
    port = url.rsplit(":", 1)[1]
    with server_process(
        [str(tracd), "-b", "127.0.0.1", "-p", port, "-s", str(env)], url, env.parent / "tracd.log"
    ):
        yield url, env / "db" / "trac.db"


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as con:
        return [tuple(r) for r in con.execute(sql).fetchall()]


def test_file_a_ticket_comment_on_it_and_write_a_wiki_page_in_trac(trac, tmp_path, chromium):
    url, db = trac
    task = tmp_path / "trac.yaml"
    task.write_text(
        f"""name: a ticket and a wiki page in Trac
settings: {{wait_timeout: 15}}
driver: {{browser: {{base_url: "{url}"}}}}
steps:
  - open: /
  - click: New Ticket
  - type: {{text: "Login page shows a blank screen", into: Summary}}
  - type: {{text: "Steps: open /login in Firefox. Nothing renders.", into: Description}}
  - type: {{text: alice, into: Your email or username}}
  - select: {{option: critical, field: Priority}}
  - click: Create ticket                       # POST with Trac's form token, then its redirect
  - see: Login page shows a blank screen
  - click: View Tickets
  - click: Active Tickets
  - click: Login page shows a blank screen     # the report links the ticket
  - type: {{text: "Reproduced on Chromium too.", into: WikiFormatting}}   # its label: "You may use WikiFormatting here."
  - click: Submit changes
  - see: Reproduced on Chromium too.
  - open: /wiki/MeetingNotes
  - click: Create this page
  - click: {{text: role=textbox, nth: 2}}       # the page's text (no label: by role, after the search box)
  - type: "= Meeting notes =\\nWe ship on Friday."
  - click: Submit changes                     # below the fold: scrolled into view first
  - see: We ship on Friday.
"""
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", "\n".join(
        f"{s.kind} {s.instruction} {s.outcome} {s.error or ''}" for s in res.steps
    )
    assert not [s for s in res.steps if s.retried]
    created = next(s for s in res.steps if s.instruction == "Create ticket")
    assert created.navigation["url"].startswith(f"{url}/ticket/1") and created.navigation["status"] == 200
    assert created.result["scrolled_into_view"].startswith('button "Create ticket"')  # it was below the fold
    # Trac's own database
    assert rows(db, "select id, summary, reporter, priority, description from ticket") == [
        (
            1,
            "Login page shows a blank screen",
            "alice",
            "critical",
            "Steps: open /login in Firefox. Nothing renders.",
        )
    ]
    assert rows(db, "select ticket, field, newvalue from ticket_change where field = 'comment'") == [
        (1, "comment", "Reproduced on Chromium too.")
    ]
    assert rows(db, "select name, version, text from wiki where name = 'MeetingNotes'") == [
        ("MeetingNotes", 1, "= Meeting notes =\r\nWe ship on Friday.")  # a form sends CRLF
    ]


def test_a_ticket_the_model_filed_exports_to_a_script_that_files_it_again(trac, tmp_path, chromium):
    """A goal run (an oracle plays the model's weights) files a ticket; its export, run with no model,
    files the same ticket again: Trac's database has it twice."""
    from pixelpilot.tasks.export import export_run
    from pixelpilot.tasks.runner import make_driver
    from tests.support.oracle import TreeOracle

    url, db = trac
    task = tmp_path / "model.yaml"
    task.write_text(
        f"""name: the model files a ticket
settings: {{wait_timeout: 15}}
model: qwen3-vl-2b
driver: {{browser: {{base_url: "{url}"}}}}
steps:
  - open: /
  - goal: {{goal: "File a ticket titled 'Search ignores accents'", max_steps: 8}}
"""
    )
    oracle = TreeOracle(
        [
            ("click", "New Ticket"),
            ("click", {"label": "Summary"}),
            ("type", "Search ignores accents"),
            ("scroll", 8),
            ("click", "Create ticket"),
            ("answer", 'Filed the ticket "Search ignores accents"'),
        ]
    )

    def factory(spec, opts):
        oracle.driver = make_driver(spec, opts, task.parent, launch=False)
        return oracle.driver

    res = run_task(
        task,
        RunOptions(output=tmp_path / "runs"),
        model_factory=lambda *_: oracle.model(),
        driver_factory=factory,
    )
    assert res.status == "passed", "\n".join(
        f"{s.kind} {s.instruction} {s.outcome} {s.error or ''}" for s in res.steps
    )
    summary = "select count(*) from ticket where summary = 'Search ignores accents'"
    assert rows(db, summary) == [(1,)]

    out = tmp_path / "script" / "file-ticket.yaml"
    done = export_run(res.run_dir, out)
    steps = yaml.safe_load(done.text)["steps"]
    assert not done.left and not done.images, done.text
    # the link reads as Trac's style shows it (upper case); a text matches whatever its case
    assert steps == [
        {"open": "/"},
        {"click": "NEW TICKET"},
        {"click": "Summary:"},
        {"type": "Search ignores accents"},
        {"scroll": {"direction": "down", "amount": 800}},
        {"click": "Create ticket"},
        {"see": "Search ignores accents"},  # the answer's quoted text, on Trac's ticket page
    ], done.text
    again = run_task(out, RunOptions(output=tmp_path / "again"))
    assert again.status == "passed", again.error
    assert rows(db, summary) == [(2,)], "the exported script filed the ticket again, with no model"
