"""An unmodified third-party web application: the Roundup issue tracker (PyPI ``roundup``, the classic
template on SQLite), installed and started by the suite on loopback. A task file logs in through its
login form, opens its "Create New" page, submits an issue and checks the result page; Roundup's own
database (read with its own ``roundup-admin``) proves the issue was created exactly once, by that user.

Its forms have no <label> elements: the task reaches the fields by role and position, as the locators
documented today allow (the issue "Locators" brings labels that share a container)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import free_port, server_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]
BIN = Path(sys.executable).parent


def admin(home: Path, *args: str) -> str:
    res = subprocess.run(
        [str(BIN / "roundup-admin"), "-i", str(home), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def roundup() -> Iterator[tuple[str, Path]]:
    if not (BIN / "roundup-server").exists():
        if os.environ.get("CI"):
            pytest.fail("roundup is missing on CI: pip install roundup (the test extra)")
        pytest.skip("roundup is not installed (pip install roundup)")
    # not under pytest's temporary folder: that one is root's alone (0700), and the server runs as nobody
    top = Path(tempfile.mkdtemp(prefix="pixelpilot-roundup-"))
    home = top / "tracker"
    port = free_port()
    url = f"http://127.0.0.1:{port}/demo/"
    # mail goes to a file (mail_debug): the nosy detector writes a message when an issue is filed
    mail = f"mail_domain=localhost,mail_host=localhost,mail_debug={home.parent / 'mail.log'}"
    admin(home, "install", "classic", "sqlite", f"tracker_web={url},{mail}")
    admin(home, "initialise", "secret123")
    as_user: list[str] = []
    if os.geteuid() == 0:  # roundup-server refuses to run as root: it drops to nobody
        for p in [top, *top.rglob("*")]:
            shutil.chown(p, "nobody", "nogroup")
        as_user = ["-u", "nobody", "-g", "nogroup"]
    cmd = [str(BIN / "roundup-server"), *as_user, "-p", str(port), "-n", "127.0.0.1", f"demo={home}"]
    with server_process(cmd, url, home.parent / "server.log"):
        yield url, home
    shutil.rmtree(top, ignore_errors=True)


def test_log_in_and_file_an_issue_in_roundup(roundup, tmp_path, chromium, monkeypatch):
    url, home = roundup
    monkeypatch.setenv("ROUNDUP_ADMIN_PASSWORD", "secret123")  # typed as a secret: written nowhere
    task = tmp_path / "roundup.yaml"
    task.write_text(
        f"name: file an issue in Roundup\nsettings: {{wait_timeout: 15}}\nsteps:\n"
        f"  - open: {url}\n"
        "  - click: {text: role=textbox, nth: 3}        # the login name (no <label>: by role, in reading order)\n"
        "  - type: admin\n"
        "  - click: {text: role=textbox, nth: 4}        # the password\n"
        "  - type: {secret: ROUNDUP_ADMIN_PASSWORD}\n"
        '  - click: role=button[name="Login"]\n'
        "  - wait_for: Create New\n"
        "  - click: {text: Create New, nth: 1}      # issues (the second one creates users)\n"
        "  - wait_for: Submit New Entry\n"
        "  - click: {text: role=textbox, nth: 2}        # Title (after the search box, in reading order)\n"
        '  - type: "The printer is on fire ✓"\n'
        "  - select: bug                                # the priority Roundup requires (the only dropdown offering it)\n"
        "  - click: Submit New Entry\n"
        "  - wait_for: created\n"
        "  - see: The printer is on fire ✓\n"
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", f"{res.error}\n" + "\n".join(
        f"{s.kind} {s.instruction} {s.outcome}" for s in res.steps
    )
    submit = next(s for s in res.steps if s.kind == "click" and s.instruction == "Submit New Entry")
    assert submit.navigation is not None and "issue" in submit.navigation["url"] and not submit.retried
    # Roundup's own database: one issue, with that title, created by admin
    listed = admin(home, "list", "issue", "title").strip().splitlines()
    assert listed == ["1: The printer is on fire ✓"]
    assert admin(home, "get", "creator", "issue1").strip() == "1"  # user1 is admin: the login worked
    # the password reached Roundup's login form, and no file of the run holds it
    blob = b"".join(p.read_bytes() for p in res.run_dir.rglob("*") if p.is_file())
    assert b"secret123" not in blob and b"${secret:ROUNDUP_ADMIN_PASSWORD}" in blob
