"""Fault injection: signals, dead programs, broken servers, a full disk, bad input — each ends with the
documented exit code and message, a run.json that says what happened, every finished step in
steps.jsonl, a report that renders, and nothing left running (checked in /proc).

The README's "Reliability" table lists these cases and their outcomes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.agent import read_run
from tests.support.procs import lock_owner

from ..conftest import EXAMPLES, ROOT, run_dirs
from .test_cli_runs import cli

pytestmark = [pytest.mark.faults, pytest.mark.browser]

DEMO = (EXAMPLES / "demo_app" / "index.html").as_uri()
SLOW = f"steps:\n  - open: {DEMO}\n  - see: Sign in to Acme\n  - wait_for: {{text: never appears, timeout: 120}}\n"


# -- helpers -------------------------------------------------------------------------------------
def marked(mark: str) -> list[int]:
    """Processes whose environment carries ``mark`` (every process a run started inherits it)."""
    needle = f"PIXELPILOT_TEST_MARK={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


def gone(mark: str, timeout: float = 20) -> list[int]:
    """Wait until no process carries ``mark``; returns what is still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = marked(mark)
        if not left:
            return []
        time.sleep(0.2)
    left = marked(mark)
    for pid in left:  # do not leave them for the next test
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [*left, *[f"{p}: {_cmdline(p)}" for p in left]]  # type: ignore[list-item]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def listening(mark: str) -> list[str]:
    """TCP sockets listening in processes that carry ``mark``."""
    inodes: set[str] = set()
    for pid in marked(mark):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:
                    out.append(cols[1])
    return out


def start(args: list[str], mark: str, **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "pixelpilot.tasks.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PIXELPILOT_TEST_MARK": mark, "COLUMNS": "200", **kw.pop("env", {})},
        **kw,
    )


def wait_for_steps(runs: Path, n: int, timeout: float = 90, count: int = 1) -> list[Path]:
    """The run directories under ``runs`` once ``count`` of them hold ``n`` finished steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [
            p.parent
            for p in runs.glob("*/steps.jsonl")
            if len([line for line in p.read_text().splitlines() if line.strip()]) >= n
        ]
        if len(ready) >= count:
            time.sleep(0.5)  # into the next step
            return ready
        time.sleep(0.1)
    raise AssertionError(f"the runs never got going: {list(runs.glob('*'))}")


def assert_complete(run_dir: Path, status: str) -> None:
    run = read_run(run_dir)
    assert run.meta["status"] == status, run.meta
    assert run.meta["ended"] and not run.problems, run.problems
    assert len(run.steps) == run.meta["steps"]
    assert (run_dir / "report.html").is_file()
    assert status in (run_dir / "report.html").read_text()


@pytest.fixture
def mark() -> Iterator[str]:
    m = uuid.uuid4().hex
    yield m
    gone(m, timeout=5)


# -- signals: single runs ------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_ends_a_run_as_interrupted_with_nothing_left(chromium, tmp_path, mark, sig):
    task = tmp_path / "slow.yaml"
    task.write_text(SLOW)
    proc = start(["run", str(task), "--output", str(tmp_path / "runs")], mark)
    (run_dir,) = wait_for_steps(tmp_path / "runs", 2)
    assert marked(mark), "the browser's processes should carry the mark"
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out and "Traceback" not in out
    assert_complete(run_dir, "interrupted")
    assert [s.outcome for s in read_run(run_dir).steps] == ["passed", "passed", "interrupted"]
    assert gone(mark) == []


def test_sigkill_of_a_run_takes_its_browser_with_it(chromium, tmp_path, mark):
    task = tmp_path / "slow.yaml"
    task.write_text(SLOW)
    proc = start(["run", str(task), "--output", str(tmp_path / "runs")], mark)
    (run_dir,) = wait_for_steps(tmp_path / "runs", 2)
    assert len(marked(mark)) > 2  # python, Playwright's driver, Chromium's processes
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(mark) == []
    assert listening(mark) == []
    run = read_run(run_dir)  # nothing can be recorded at a SIGKILL; what was recorded is intact
    assert [s.outcome for s in run.steps] == ["passed", "passed"]
    assert any("did not finish" in p for p in run.problems)
    assert cli("report", str(run_dir)).returncode == 0


# -- signals: batches ----------------------------------------------------------------------------------
def _batch(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "tasks"
    folder.mkdir()
    for i in range(n):
        (folder / f"slow{i}.yaml").write_text(f"name: slow{i}\n" + SLOW)
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_to_a_batch_stops_every_worker_and_says_so(chromium, tmp_path, mark, sig):
    folder = _batch(tmp_path)
    junit = tmp_path / "j.xml"
    scratch_before = set(Path(tempfile.gettempdir()).glob("pixelpilot-batch-*"))
    proc = start(
        ["run", str(folder), "--workers", "2", "--output", str(tmp_path / "runs"), "--junit", str(junit)],
        mark,
    )
    started = wait_for_steps(tmp_path / "runs", 2, count=2)
    os.kill(proc.pid, sig)  # the parent alone, as `kill` does
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 130, out
    assert "0 passed, 0 failed, 3 interrupted" in out and "Traceback" not in out
    for run_dir in started:
        assert_complete(run_dir, "interrupted")
    assert len(list((tmp_path / "runs").glob("*/run.json"))) == 2  # the third never started
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 3 and all(c.find("error") is not None for c in cases)
    assert gone(mark) == []
    assert set(Path(tempfile.gettempdir()).glob("pixelpilot-batch-*")) <= scratch_before  # no scratch left


def test_sigkill_of_a_batch_parent_stops_its_workers_cleanly(chromium, tmp_path, mark):
    folder = _batch(tmp_path, 2)
    proc = start(["run", str(folder), "--workers", "2", "--output", str(tmp_path / "runs")], mark)
    started = wait_for_steps(tmp_path / "runs", 2, count=2)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(mark, timeout=60) == []
    for run_dir in started:  # each worker saw its parent go and ended its own run properly
        assert_complete(run_dir, "interrupted")
        assert "parent" in read_run(run_dir).meta["error"] or "SIGTERM" in read_run(run_dir).meta["error"]


# -- the desktop: Xvfb and the app under test ------------------------------------------------------------
@pytest.mark.desktop
def test_sigkill_of_a_desktop_run_takes_xvfb_and_the_app_with_it(tmp_path, mark):
    task = tmp_path / "desk.yaml"
    task.write_text(
        "driver: {desktop: {launch: [xterm, -geometry, 80x20+0+0]}}\nsteps:\n  - key: a\n  - wait_for: {text: never, timeout: 120}\n"
    )
    proc = start(["run", str(task), "--output", str(tmp_path / "runs")], mark)
    wait_for_steps(tmp_path / "runs", 1)
    names = {_cmdline(p).split()[0].rsplit("/", 1)[-1] for p in marked(mark)}
    assert {"Xvfb", "xterm"} <= names, names
    servers = [p for p in marked(mark) if "Xvfb" in _cmdline(p)]
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(mark) == []
    assert servers  # and the display's lock file is gone with it (Xvfb got SIGTERM, not SIGKILL)
    assert not [lock for lock in Path("/tmp").glob(".X*-lock") if lock_owner(lock) in servers]


# -- time limits -----------------------------------------------------------------------------------------
def test_step_and_run_timeouts_fail_the_run_with_the_limit_named(chromium, tmp_path, mark):
    task = tmp_path / "slow.yaml"
    task.write_text(SLOW)
    t = time.monotonic()
    res = cli("run", str(task), "--output", str(tmp_path / "a"), "--step-timeout", "2")
    assert time.monotonic() - t < 60
    assert res.returncode == 1 and "ran past its step_timeout of 2 s" in res.stdout
    (run_dir,) = run_dirs(tmp_path / "a")
    assert_complete(run_dir, "failed")
    assert read_run(run_dir).steps[-1].error_type == "BudgetExceeded"
    task.write_text("settings: {run_timeout: 3}\n" + SLOW)
    res = cli("run", str(task), "--output", str(tmp_path / "b"))
    assert res.returncode == 1 and "ran past its run_timeout (3 s)" in res.stdout


# -- environment failures: exit 3 and a message ------------------------------------------------------------
def test_environment_failures_exit_3_with_a_message(chromium, tmp_path):
    task = tmp_path / "t.yaml"
    task.write_text(f"steps:\n  - open: {DEMO}\n")
    res = cli("run", str(task), "--output", str(tmp_path / "r"), env={"PIXELPILOT_CHROMIUM": "/bin/false"})
    assert res.returncode == 3 and "environment:" in res.stdout and "Traceback" not in res.stdout + res.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = cli("run", str(task), "--output", str(blocker / "runs"))
    assert res.returncode == 3 and "cannot create the run directory" in res.stdout, res.stdout + res.stderr
    res = cli("run", str(task), "--output", str(tmp_path / "r"), "--junit", str(blocker / "j.xml"))
    assert res.returncode == 3 and "cannot write" in res.stdout and "Traceback" not in res.stderr


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root and must be able to mount a small tmpfs: {done.stderr!r}")
        pytest.skip(f"cannot mount a tmpfs here (not root?): {done.stderr!r}")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_disk_is_an_environment_error_and_leaves_no_torn_file(chromium, tmp_path, small_disk):
    task = tmp_path / "t.yaml"
    steps = "".join(
        f"  - type: {{text: user{i} was here, into: Username}}\n" for i in range(60)
    )  # a new frame each
    task.write_text(f"steps:\n  - open: {DEMO}\n" + steps)
    res = cli("run", str(task), "--output", str(small_disk))
    assert res.returncode == 3, res.stdout + res.stderr
    assert "No space left on device" in res.stdout and "Traceback" not in res.stdout + res.stderr
    (run_dir,) = run_dirs(small_disk)
    for frame in (run_dir / "frames").iterdir():  # every frame on disk is whole
        assert frame.read_bytes()[-2:] == b"\xff\xd9", frame
    assert not list(run_dir.glob(".*.tmp"))
    run = read_run(run_dir)
    assert run.meta["status"] in ("error", "running")  # "running" only if not even run.json fit
    assert all(s.outcome == "passed" for s in run.steps[:-1])


# -- the model server -------------------------------------------------------------------------------------
class BadServer:
    """A model server on a real socket that misbehaves in one chosen way."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            body = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body) + 1000}\r\n\r\n"
            if self.how == "drip":
                conn.sendall(head.encode())
                for b in body * 100:
                    if self.stop.is_set():
                        return
                    with contextlib.suppress(OSError):
                        conn.sendall(bytes([b]))
                    time.sleep(0.05)
            elif self.how == "silent":
                self.stop.wait(60)
            elif self.how == "close":
                conn.sendall(head.encode() + body[:10])
            elif self.how == "garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!")

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("drip", "no complete answer within 2 s"),
        ("silent", "no answer within 2 s"),
        ("close", "RemoteProtocolError"),
        ("garbage", "not JSON"),
    ],
)
def test_a_misbehaving_model_server_is_an_error_in_bounded_time(chromium, tmp_path, how, says):
    server = BadServer(how)
    task = tmp_path / "t.yaml"
    task.write_text(
        f"model: {{openai: '{server.url}', timeout: 2, retries: 1}}\nsteps:\n  - open: {DEMO}\n  - act: Sign in\n"
    )
    try:
        t = time.monotonic()
        res = cli("run", str(task), "--output", str(tmp_path / "r"))
        took = time.monotonic() - t
    finally:
        server.close()
    assert res.returncode == 3, res.stdout + res.stderr  # the model could not even be listed
    assert says in res.stdout and "Traceback" not in res.stdout + res.stderr
    assert took < 40


def test_a_model_server_that_dies_mid_run_fails_the_step_that_needed_it(chromium, tmp_path):
    from tests.support.fake_openai import ReplayServer

    server = ReplayServer(
        [
            'Thought: none\n<tool_call>\n{"name": "computer_use", "arguments": {"action": "wait", "time": 0.1}}\n</tool_call>'
        ]
    )
    task = tmp_path / "t.yaml"
    task.write_text(
        f"model: {{openai: '{server.url}', name: m, timeout: 3, retries: 1}}\n"
        f"steps:\n  - open: {DEMO}\n  - act: wait a moment\n  - act: wait again\n"
    )

    def stop_after_first_reply() -> None:
        server.replied.wait(60)
        server.close()

    threading.Thread(target=stop_after_first_reply, daemon=True).start()
    res = cli("run", str(task), "--output", str(tmp_path / "r"))
    assert res.returncode == 1, res.stdout
    (run_dir,) = run_dirs(tmp_path / "r")
    assert_complete(run_dir, "failed")
    steps = read_run(run_dir).steps
    assert [s.outcome for s in steps] == ["passed", "passed", "failed"]
    assert steps[-1].error_type == "ServerUnavailable" and "cannot connect" in steps[-1].error


# -- the adb connection -------------------------------------------------------------------------------------
@pytest.mark.android
def test_the_adb_server_going_away_mid_run_is_a_driver_error(tmp_path, monkeypatch):
    from pixelpilot.agent import Agent
    from pixelpilot.drivers.android import AndroidDriver
    from tests.support.fake_adb import FakeAdbServer, FakeDevice

    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")
    srv = FakeAdbServer([FakeDevice("fake-5554")]).start()
    d = AndroidDriver.connect(port=srv.port)
    agent = Agent(d, output=tmp_path, task="adb")
    from pixelpilot.agent import DriverError

    with pytest.raises(DriverError), agent:
        agent.click("Notes")
        srv.stop()
        agent.click("Save")
    run = read_run(agent.recorder.path)
    assert run.meta["status"] == "error" and [s.outcome for s in run.steps] == ["passed", "error"]
    assert (agent.recorder.path / "report.html").is_file()
    d.close()


# -- bad input through the CLI --------------------------------------------------------------------------------
def test_bad_command_lines_and_files_exit_2_without_a_traceback(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "docker-compose.yaml").write_text("services: {web: {image: x}}\n")
    for args, says in (
        (["run", str(empty)], "no task files here"),
        (["run", str(empty), "--workers", "0"], "expected a whole number ≥ 1, got 0"),
        (["run", str(empty), "--workers", "-1"], "expected a whole number ≥ 1, got -1"),
        (["run", str(empty), "--timeout", "nan"], "expected seconds"),
    ):
        res = cli(*args)
        assert res.returncode == 2 and says in res.stdout + res.stderr and "Traceback" not in res.stderr, args
    for stdin in (
        "",
        "{" * 10000,
        "x" * 100_000,
        '<tool_call>{"name": "computer_use", "arguments": 5}</tool_call>',
    ):
        res = subprocess.run(
            [sys.executable, "-m", "pixelpilot.tasks.cli", "parse-reply", "--screen", "1280x800"],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert res.returncode in (1, 2) and "Traceback" not in res.stderr + res.stdout, stdin[:40]


def test_user_text_is_never_read_as_markup_and_junit_stays_valid_with_colours(chromium, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        f"name: '[staging] login [/x]'\nsteps:\n  - open: {DEMO}\n  - see: '[/x] not there [bold]'\n"
    )
    junit = tmp_path / "j.xml"
    res = cli(
        "run", str(folder), "--output", str(tmp_path / "r"), "--junit", str(junit), env={"FORCE_COLOR": "1"}
    )
    assert res.returncode == 1
    assert "[/x] not there [bold]" in res.stdout and "Traceback" not in res.stdout + res.stderr
    root = ET.parse(junit).getroot()  # valid XML although the worker's output was coloured
    assert "\x1b" not in ET.tostring(root, encoding="unicode")
    single = cli("run", str(folder / "a.yaml"), "--output", str(tmp_path / "r"))
    assert (
        "[staging] login [/x]" in single.stdout and "'[/x] not there [bold]' is not visible" in single.stdout
    )


# -- the console ----------------------------------------------------------------------------------------------
def test_sigkill_of_the_console_stops_its_live_runs_cleanly(chromium, tmp_path, mark):
    import httpx

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "slow.yaml").write_text(SLOW)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start(["ui", "--runs", str(tmp_path / "runs"), "--tasks", str(tasks), "--port", str(port)], mark)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/api/tasks", timeout=5).status_code == 200:
                break
        time.sleep(0.1)
    assert httpx.post(url + "/api/jobs", json={"task_file": "slow.yaml"}, timeout=30).status_code == 201
    (run_dir,) = wait_for_steps(tmp_path / "runs", 2)
    proc.kill()
    proc.communicate(timeout=30)
    assert gone(mark, timeout=60) == []
    assert listening(mark) == []
    assert_complete(run_dir, "interrupted")
