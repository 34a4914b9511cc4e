"""doctor and report commands as a user meets them."""

from __future__ import annotations

import os
import subprocess
import sys

from ..conftest import ROOT


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "220", **(env or {})},
        timeout=120,
    )


def test_doctor_lists_every_dependency_with_a_fix(chromium):
    res = run("doctor")
    for what in ("playwright", "Chromium", "OCR", "Xvfb", "adb", "torch"):
        assert what in res.stdout
    assert res.returncode == 0, res.stdout  # everything required is present on CI


def test_doctor_exits_3_and_says_how_to_install_chromium():
    res = run("doctor", env={"PIXELPILOT_CHROMIUM": "/no/such/chrome"})
    assert res.returncode == 3
    assert "apt-get install -y chromium" in res.stdout


def test_report_of_a_missing_run_dir_is_a_usage_error(tmp_path):
    res = run("report", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no run directory" in res.stdout
    assert "Traceback" not in res.stderr
