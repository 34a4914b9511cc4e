"""Secrets never reach a file: a task types a password from a dotenv file (the demo app) and from the
environment (Roundup, a third-party tracker, whose login proves the value reached the field), fails a later
step on purpose, and then every byte under the run folder, the JUnit file, the console's API answers and the
captured command-line output is searched for the value. The password field is a filled box in the frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from pixelpilot.agent import read_run
from pixelpilot.tasks import RunOptions, run_task

from ..conftest import EXAMPLES, run_dirs
from .test_console import Server, free_port

pytestmark = pytest.mark.browser
BIN = Path(sys.executable).parent
VALUE = "wonderland"  # the demo app's password for alice


def everything(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_a_secret_typed_from_a_dotenv_file_is_written_nowhere(tmp_path, chromium):
    from pixelpilot.tasks.console.app import create_app

    shutil.copytree(EXAMPLES / "demo_app", tmp_path / "demo_app")
    (tmp_path / "secrets.env").write_text(f"DEMO_PASSWORD={VALUE}\n")
    task = tmp_path / "login.yaml"
    task.write_text(
        """name: sign in with a secret
steps:
  - open: demo_app/index.html
  - type: {text: alice, into: Username}
  - type: {secret: DEMO_PASSWORD, into: Password}
  - click: Sign in
  - wait_for: Welcome, alice
  - expect: {target: {css: "#password"}, to_have_value: "${secret:DEMO_PASSWORD}-not"}   # fails on purpose
"""
    )
    runs = tmp_path / "runs"
    out = subprocess.run(
        [
            str(BIN / "pixelpilot"),
            "run",
            str(task),
            "--secrets",
            str(tmp_path / "secrets.env"),
            "--output",
            str(runs),
            "--junit",
            str(tmp_path / "junit.xml"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode != 0, out.stdout + out.stderr  # the last step failed, as meant
    (run,) = run_dirs(runs)
    data = read_run(run)
    assert [s.outcome for s in data.steps] == ["passed"] * 5 + ["failed"]
    assert data.steps[2].instruction == "'${secret:DEMO_PASSWORD}' into Password"  # its placeholder
    assert "Welcome, alice" in json.dumps(data.steps[4].model_dump())  # so the value did reach the field
    # the console's answers about this run
    server = Server(create_app(runs, tasks=tmp_path, refresh_interval=0), free_port())
    try:
        answers = b"".join(
            httpx.get(server.url + path, timeout=30).content
            for path in ("/api/runs", f"/api/runs/{run.name}", f"/runs/{run.name}/report.html")
        )
    finally:
        server.stop()
    for where, blob in {
        "the run folder": everything(run),
        "the output folder (batch.json, the index of passing runs, the console's index)": everything(runs),
        "the JUnit file": (tmp_path / "junit.xml").read_bytes(),
        "the console": answers,
        "the command line": (out.stdout + out.stderr).encode(),
    }.items():
        assert VALUE.encode() not in blob, where
    assert (
        b"****" in (tmp_path / "junit.xml").read_bytes()
        or b"secret:DEMO_PASSWORD" in (tmp_path / "junit.xml").read_bytes()
    )
    # the password field is a uniform box in the frames taken after it was typed into
    box = data.steps[2].box
    assert box is not None
    x, y, w, h = (round(v) for v in box)
    for step in data.steps[3:4]:
        frame = np.asarray(Image.open(run / step.frame).convert("L"), dtype=float)
        patch = frame[y + 1 : y + h - 1, x + 1 : x + w - 1]
        assert patch.size and patch.std() < 3, step.index


KEY_PAGE = """<html><body style="font-family:sans-serif;margin:20px">
<h1>Settings</h1><p>API key: <span id=key style="font-size:20px">sk-live-7fQ2xZ91</span></p>
<button onclick="document.getElementById('out').textContent='copied'">Copy</button><p id=out>-</p>
</body></html>"""


def test_mask_regions_are_filled_in_every_stored_frame(tmp_path, chromium):
    (tmp_path / "key.html").write_text(KEY_PAGE)
    task = tmp_path / "mask.yaml"
    task.write_text(
        """name: a page that shows a key
mask: [{text: "/^sk-live-/"}]
steps:
  - open: key.html
  - click: Copy
  - wait_for: copied
"""
    )
    res = run_task(task, RunOptions(output=tmp_path / "runs"))
    assert res.status == "passed", [s.error for s in res.steps]
    data = read_run(res.run_dir)
    frames = {s.frame for s in data.steps if s.frame} | {s.frame_after for s in data.steps if s.frame_after}
    assert len(frames) >= 2
    from pixelpilot.drivers import BrowserDriver

    with BrowserDriver.launch() as d:  # where the key is drawn (the same page, the same viewport)
        d.page.goto((tmp_path / "key.html").as_uri())
        b = d.page.locator("#key").bounding_box()
    assert b is not None
    for f in frames:
        img = np.asarray(Image.open(res.run_dir / f).convert("L"), dtype=float)
        patch = img[
            int(b["y"]) + 1 : int(b["y"] + b["height"]) - 1, int(b["x"]) + 1 : int(b["x"] + b["width"]) - 1
        ]
        assert patch.size and patch.std() < 3, f  # the key's text is gone: one grey
