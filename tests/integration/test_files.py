"""Uploads through the file chooser and downloads into the run directory. The server keeps what was
uploaded (its own record of name and content); a download lands in ``<run>/downloads/`` with the bytes
the server sent, listed in the step and in run.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP

import pytest

from pixelpilot.agent.errors import ConfigError
from pixelpilot.tasks import RunOptions, run_task
from tests.support.web import Page, serve

pytestmark = pytest.mark.browser

REPORT = b"quarterly numbers: 1, 2, 3\n"
PAGE = """<html><body><h1>Files</h1>
<form method=post action="/upload" enctype="multipart/form-data">
  <label for=doc>Attachment</label> <input id=doc type=file name=doc>
  <button>Send</button></form>
<a href="/report.csv">Download the report</a>
</body></html>"""


class Site(Page):
    uploads: list[tuple[str, bytes]] = []

    def _send(self, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        for k, v in {"Content-Type": ctype, "Content-Length": str(len(body)), **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/report.csv":
            self._send(REPORT, "text/csv", {"Content-Disposition": 'attachment; filename="report.csv"'})
        else:
            self._send(PAGE.encode(), "text/html")

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + body)
        (part,) = [p for p in form.iter_parts() if p.get_param("name", header="content-disposition") == "doc"]
        name = part.get_filename()
        Site.uploads.append((name, part.get_payload(decode=True)))
        self._send(f"<h1>Received {name}</h1>".encode(), "text/html")


@pytest.fixture
def site() -> Iterator[str]:
    Site.uploads = []
    with serve(Site) as url:
        yield url + "/"


def test_upload_and_download_from_a_task_file(site, tmp_path, chromium):
    (tmp_path / "notes.txt").write_text("my notes ✓")
    task = tmp_path / "files.yaml"
    task.write_text(
        f"steps:\n  - open: {site}\n  - upload: {{file: notes.txt, into: Attachment}}\n  - click: Send\n"
        "  - see: Received notes.txt\n"
        f"  - open: {site}\n  - click: Download the report\n  - wait_for: {{download: report}}\n"
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", res.error
    assert Site.uploads == [("notes.txt", "my notes ✓".encode())]  # the server's own record
    files = [d for s in res.steps for d in s.downloads]
    assert [(d["name"], d["file"]) for d in files] == [("report.csv", "downloads/report.csv")]
    assert (res.run_dir / "downloads" / "report.csv").read_bytes() == REPORT
    meta = json.loads((res.run_dir / "run.json").read_text())
    assert [d["file"] for d in meta["downloads"]] == ["downloads/report.csv"]


def test_a_missing_upload_file_is_named(site, tmp_path, chromium):
    task = tmp_path / "files.yaml"
    task.write_text(f"steps:\n  - open: {site}\n  - upload: {{file: nope.txt, into: Attachment}}\n")
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "failed" and "no file to upload at" in res.error and "nope.txt" in res.error
    assert issubclass(ConfigError, Exception)
