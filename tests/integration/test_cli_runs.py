"""End to end through the CLI: the demo task, and every fault the foundation issue names."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pixelpilot.agent import read_run
from pixelpilot.tasks import RunOptions, run_task
from tests.support.procs import pids_running

from ..conftest import EXAMPLES, ROOT, run_dirs

pytestmark = pytest.mark.browser


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def only_run(out: Path) -> Path:
    runs = run_dirs(out)
    assert len(runs) == 1, runs
    return runs[0]


def test_demo_task_end_to_end(chromium, tmp_path):
    res = cli("run", str(EXAMPLES / "demo.yaml"), "--output", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASSED demo" in res.stdout and "[19/19]" in res.stdout
    run_dir = only_run(tmp_path)
    assert run_dir.name.endswith("-demo")
    for name in ("run.json", "steps.jsonl", "report.html", "frames"):
        assert (run_dir / name).exists(), name
    run = read_run(run_dir)
    assert run.meta["status"] == "passed" and run.meta["driver"] == "browser"
    assert len(run.steps) == 19 and all(s.outcome == "passed" for s in run.steps)
    clicks = [s for s in run.steps if s.kind == "click"]
    assert all(s.locator == "ui-tree" and s.point and s.effect == "changed" for s in clicks)
    html = (run_dir / "report.html").read_text()
    for s in run.steps:  # every step has its frame, and the report shows it
        assert s.frame and (run_dir / s.frame).is_file()
        assert f'src="{s.frame}"' in html
    assert html.count('class="marker"') >= len(clicks)


def test_report_renders_in_a_real_browser(chromium, tmp_path, browser):
    res = run_task(EXAMPLES / "demo.yaml", RunOptions(output=tmp_path))
    assert res.status == "passed"
    browser.goto((res.run_dir / "report.html").as_uri())
    loaded = browser.page.evaluate(
        "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert loaded == 19, "every frame image must load from the run directory"
    marker = browser.page.locator("#step-3 .marker").bounding_box()
    img = browser.page.locator("#step-3 img").bounding_box()
    step = res.steps[3]
    # the marker sits where the click went, scaled to the displayed frame
    assert marker["x"] + marker["width"] / 2 == pytest.approx(
        img["x"] + step.point[0] / 1280 * img["width"], abs=2
    )


def test_no_chromium_exits_3_with_the_install_line(tmp_path):
    res = cli(
        "run",
        str(EXAMPLES / "demo.yaml"),
        "--output",
        str(tmp_path),
        env={"PIXELPILOT_CHROMIUM": "/nonexistent/chrome"},
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "apt-get install -y chromium" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


def test_headed_without_display_exits_3(chromium, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelpilot.tasks.cli",
            "run",
            str(EXAMPLES / "demo.yaml"),
            "--headed",
            "--output",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 3 and "needs a display" in res.stdout


@pytest.fixture
def http_root(tmp_path):
    (tmp_path / "ok.html").write_text("<h1>Fine</h1>")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_page_that_fails_to_load_names_url_and_status(chromium, tmp_path, http_root):
    task = tmp_path / "t.yaml"
    task.write_text(
        f"steps:\n  - open: {http_root}/ok.html\n  - see: Fine\n  - open: {http_root}/missing.html\n  - see: never\n"
    )
    res = cli("run", str(task), "--output", str(tmp_path / "runs"))
    assert res.returncode == 1
    run = read_run(only_run(tmp_path / "runs"))
    assert [s.outcome for s in run.steps] == ["passed", "passed", "failed"]
    assert f"could not open {http_root}/missing.html: HTTP 404" in run.steps[2].error
    assert run.meta["status"] == "failed"


def test_missing_target_fails_with_candidates_and_frame(chromium, tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text(
        f"steps:\n  - open: {(EXAMPLES / 'demo_app' / 'index.html').as_uri()}\n  - click: Sign on\n"
    )
    res = cli("run", str(task), "--output", str(tmp_path / "runs"))
    assert res.returncode == 1
    assert "no element with the text 'Sign on'" in res.stdout
    run_dir = only_run(tmp_path / "runs")
    step = read_run(run_dir).steps[1]
    assert step.outcome == "failed" and "'Sign in'" in step.candidates
    assert step.frame and (run_dir / step.frame).is_file()
    assert "Sign on" in (run_dir / "report.html").read_text()


def test_browser_killed_mid_run_leaves_a_complete_log(chromium, tmp_path):
    from pixelpilot.drivers import BrowserDriver

    marker = f"--pp-test-victim-{os.getpid()}"  # an unknown switch Chromium ignores: it names this browser's processes

    def victim_driver(task, opts):
        return BrowserDriver.launch(headless=True, args=[marker])

    def kill_browser(rec):
        if rec.index == 2:
            pids = pids_running(marker)
            assert pids, "the browser's processes were not found"
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)

    res = run_task(
        EXAMPLES / "demo.yaml",
        RunOptions(output=tmp_path),
        on_step=kill_browser,
        driver_factory=victim_driver,
    )
    assert res.status == "error"
    run = read_run(res.run_dir)
    assert run.meta["status"] == "error" and "browser" in run.meta["error"]
    assert [s.outcome for s in run.steps[:3]] == ["passed"] * 3
    assert run.steps[-1].outcome == "error"
    report = cli("report", str(res.run_dir))
    assert report.returncode == 0 and "report.html" in report.stdout


def test_ctrl_c_mid_run_marks_the_run_interrupted(chromium, tmp_path):
    task = tmp_path / "slow.yaml"
    task.write_text(
        f"steps:\n  - open: {(EXAMPLES / 'demo_app' / 'index.html').as_uri()}\n  - see: Sign in to Acme\n"
        "  - wait_for: {text: never appears, timeout: 60}\n  - see: unreachable\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(task), "--output", str(tmp_path / "runs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 60
    steps_file = None
    while time.time() < deadline:
        runs = list((tmp_path / "runs").glob("*/steps.jsonl")) if (tmp_path / "runs").exists() else []
        if runs and len(runs[0].read_text().splitlines()) >= 2:
            steps_file = runs[0]
            break
        time.sleep(0.1)
    assert steps_file is not None, "the run never got going"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    run = read_run(steps_file.parent)
    assert run.meta["status"] == "interrupted"
    assert [s.outcome for s in run.steps] == ["passed", "passed", "interrupted"]
    assert "Traceback" not in out
    report = cli("report", str(steps_file.parent))
    assert report.returncode == 0
    assert json.loads((steps_file.parent / "run.json").read_text())["ended"]
