"""`pixelpilot run DIR --workers --shard --junit`: parallel processes, shards, a crashed worker, JUnit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pixelpilot.agent import read_run
from tests.support.procs import pids_running
from tests.support.web import Page, serve

from ..conftest import EXAMPLES, ROOT, run_dirs

pytestmark = pytest.mark.browser
DEMO = (EXAMPLES / "demo_app" / "index.html").as_uri()

# The rules of the common JUnit schema (Jenkins xunit-plugin junit-10.xsd): elements, their allowed and
# required attributes, and the time format. Checked here without vendoring the schema.
ALLOWED = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set()),
    "testsuite": (
        {
            "name",
            "tests",
            "failures",
            "errors",
            "group",
            "time",
            "skipped",
            "timestamp",
            "hostname",
            "id",
            "package",
            "file",
            "log",
            "url",
        },
        {"name", "tests", "failures", "errors"},
    ),
    "testcase": ({"name", "time", "classname", "group"}, {"name"}),
    "failure": ({"type", "message"}, set()),
    "flakyFailure": ({"type", "message"}, set()),  # Surefire's (Jenkins, GitLab read it): passed on a retry
    "error": ({"type", "message"}, set()),
    "skipped": ({"type", "message"}, set()),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}
CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "flakyFailure", "system-out", "system-err"},
}
TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


def assert_common_junit(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    for el in root.iter():
        allowed, required = ALLOWED[el.tag]
        assert set(el.attrib) <= allowed, (el.tag, set(el.attrib) - allowed)
        assert required <= set(el.attrib), (el.tag, required - set(el.attrib))
        assert {c.tag for c in el} <= CHILDREN.get(el.tag, set()), el.tag
        if "time" in el.attrib and el.tag in ("testsuites", "testsuite"):
            assert TIME.fullmatch(el.attrib["time"]), el.attrib["time"]
    return root


def write_tasks(folder: Path, n_ok: int, extra: dict[str, str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_ok):
        (folder / f"ok{i}.yaml").write_text(f"steps:\n  - open: {DEMO}\n  - see: Sign in to Acme\n")
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pixelpilot.tasks.cli", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_workers_junit_and_a_failing_task(chromium, tmp_path):
    write_tasks(tmp_path / "tasks", 2, {"bad.yaml": f"steps:\n  - open: {DEMO}\n  - click: Sign on\n"})
    res = run_cli(
        str(tmp_path / "tasks"),
        "--workers",
        "3",
        "--junit",
        str(tmp_path / "junit.xml"),
        "--output",
        str(tmp_path / "runs"),
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "2 passed, 1 failed" in res.stdout and "3/3 tasks" in res.stdout
    root = assert_common_junit(tmp_path / "junit.xml")
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    bad = next(c for c in suite.iter("testcase") if c.get("name") == "bad")
    assert "no element with the text 'Sign on'" in bad.find("failure").get("message")
    assert "click     Sign on" in bad.find("failure").text and "report:" in bad.find("system-out").text
    assert len(run_dirs(tmp_path / "runs")) == 3  # one run directory per task


def test_shards_run_every_task_exactly_once(chromium, tmp_path):
    write_tasks(tmp_path / "tasks", 3)
    seen: list[str] = []
    for i in (1, 2):
        res = run_cli(
            str(tmp_path / "tasks"),
            "--shard",
            f"{i}/2",
            "--junit",
            str(tmp_path / f"j{i}.xml"),
            "--output",
            str(tmp_path / f"runs{i}"),
        )
        assert res.returncode == 0, res.stdout + res.stderr
        seen += [c.get("name") for c in assert_common_junit(tmp_path / f"j{i}.xml").iter("testcase")]
    assert sorted(seen) == ["ok0", "ok1", "ok2"]
    # the two shards' outputs merge into one folder, one JUnit file, one summary page, one index
    merged = tmp_path / "merged"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelpilot.tasks.cli",
            "merge",
            str(tmp_path / "runs1"),
            str(tmp_path / "runs2"),
            "--into",
            str(merged),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 tasks from 2 outputs" in res.stdout and "3 passed" in res.stdout
    names = [c.get("name") for c in assert_common_junit(merged / "junit.xml").iter("testcase")]
    assert names == ["ok0", "ok1", "ok2"]
    runs = run_dirs(merged)
    assert len(runs) == 3 and all(read_run(r).meta["status"] == "passed" for r in runs)
    page = (merged / "index.html").read_text()
    for r in runs:
        assert f'href="{r.name}/report.html"' in page
    from pixelpilot.agent.cache import last_passing_run

    assert last_passing_run(merged, read_run(runs[0]).meta["task"]) in runs
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixelpilot.tasks.cli",
            "merge",
            str(tmp_path / "runs1"),
            str(tmp_path / "runs1"),
            "--into",
            str(tmp_path / "m2"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and "the shards overlap" in res.stdout


def test_a_crashed_worker_fails_its_task_not_the_run(chromium, tmp_path):
    write_tasks(
        tmp_path / "tasks",
        2,
        {"slow.yaml": f"steps:\n  - open: {DEMO}\n  - wait_for: {{text: never, timeout: 60}}\n"},
    )

    def kill_the_slow_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            for pid in pids_running(str(tmp_path / "tasks" / "slow.yaml"), "--result-json"):
                time.sleep(2)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_the_slow_worker)
    killer.start()
    res = run_cli(
        str(tmp_path / "tasks"),
        "--workers",
        "3",
        "--junit",
        str(tmp_path / "j.xml"),
        "--output",
        str(tmp_path / "runs"),
    )
    killer.join()
    assert res.returncode == 1, res.stdout
    assert "ERROR" in res.stdout and "exit code -9" in res.stdout and "2 passed, 1 failed" in res.stdout
    suite = assert_common_junit(tmp_path / "j.xml").find("testsuite")
    assert suite.get("errors") == "1" and suite.get("failures") == "0"


class Visits(Page):
    """A site that remembers a browser (a cookie) and a page that is ready only from its second request."""

    asked = 0

    def do_GET(self) -> None:
        if self.path == "/later":
            Visits.asked += 1
            self.send("<h1>Ready</h1>" if Visits.asked > 1 else "<h1>Not yet</h1>")
        elif "seen=1" in (self.headers.get("Cookie") or ""):
            self.send("<h1>Welcome back</h1>")
        else:
            self.send("<h1>First visit</h1>", headers={"Set-Cookie": "seen=1; Path=/"})


@pytest.fixture
def visits():  # type: ignore[no-untyped-def]
    Visits.asked = 0
    with serve(Visits) as url:
        yield url


def test_long_lived_workers_keep_their_browser_and_give_each_task_a_clean_context(visits, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    for i in range(6):  # the cookie of one task never reaches the next on the same browser
        (folder / f"t{i}.yaml").write_text(f"steps:\n  - open: {visits}/\n  - see: First visit\n")
    out = tmp_path / "runs"
    res = run_cli(
        str(folder),
        "--workers",
        "2",
        "--keep-drivers",
        "--output",
        str(out),
        "--junit",
        str(tmp_path / "j.xml"),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 passed, 0 failed" in res.stdout
    workers = [read_run(r).meta["worker"] for r in run_dirs(out)]
    served: dict[int, list[int]] = {}
    for w in workers:
        served.setdefault(w["pid"], []).append(w["driver_task"])
    assert len(served) == 2  # two processes served six tasks (as many each as they were quick enough for)
    for counts in served.values():  # each kept its browser: its 1st, 2nd, 3rd ... task on the same one
        assert sorted(counts) == list(range(1, len(counts) + 1))
    assert max(map(len, served.values())) >= 3
    assert_common_junit(tmp_path / "j.xml")


def test_a_killed_long_lived_worker_fails_its_task_and_a_new_one_takes_the_rest(visits, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a-slow.yaml").write_text(
        f"steps:\n  - open: {visits}/\n  - wait_for: {{text: never, timeout: 60}}\n"
    )
    for i in range(2):
        (folder / f"b{i}.yaml").write_text(f"steps:\n  - open: {visits}/\n  - see: First visit\n")
    out = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixelpilot.tasks.cli",
            "run",
            str(folder),
            "--keep-drivers",
            "--output",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    deadline = time.time() + 60
    while time.time() < deadline:  # the worker is in the slow task's wait: kill it
        runs = (
            [r for r in out.glob("*/steps.jsonl") if r.read_text().count("\n") >= 1] if out.exists() else []
        )
        if runs:
            break
        time.sleep(0.2)
    (worker,) = pids_running(
        str(folder), b"\0--serve\0"
    )  # this test's worker (never vLLM's --served-model-name)
    os.kill(worker, signal.SIGKILL)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 1, output
    assert "2 passed, 1 failed" in output and "a-slow.yaml" in output and "exit code -9" in output


def test_retries_report_a_pass_on_a_later_try_as_flaky(visits, tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "later.yaml").write_text(f"steps:\n  - open: {visits}/later\n  - see: Ready\n")
    (folder / "ok.yaml").write_text(f"steps:\n  - open: {visits}/\n  - see: First visit\n")
    junit = tmp_path / "j.xml"
    res = run_cli(str(folder), "--retries", "2", "--output", str(tmp_path / "runs"), "--junit", str(junit))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 passed, 0 failed (1 flaky: passed on a retry)" in res.stdout
    suite = assert_common_junit(junit).find("testsuite")
    later = next(c for c in suite.iter("testcase") if c.get("name") == "later")
    (flaky,) = later.findall("flakyFailure")
    assert "no text 'Ready'" in flaky.get("message") or "Ready" in flaky.get("message")
    assert later.find("failure") is None and "tries: 2 (flaky" in later.find("system-out").text
    assert len(run_dirs(tmp_path / "runs")) == 3  # both tries of later.yaml are kept


def test_a_task_files_timeout_fails_it_in_a_batch(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "slow.yaml").write_text(
        f"timeout: 3\nsteps:\n  - open: {DEMO}\n  - wait_for: {{text: never, timeout: 60}}\n"
    )
    (folder / "ok.yaml").write_text(f"steps:\n  - open: {DEMO}\n  - see: Sign in to Acme\n")
    t = time.monotonic()
    res = run_cli(str(folder), "--keep-drivers", "--output", str(tmp_path / "runs"))
    assert time.monotonic() - t < 90
    assert res.returncode == 1 and "1 passed, 1 failed" in res.stdout
    assert "ran past its run_timeout (3 s)" in res.stdout


def test_a_worker_that_ignores_its_time_limit_is_killed_after_the_grace(tmp_path):
    """A task's worker frozen past its time limit (SIGSTOP: nothing in it can run its own timer) is
    killed ``grace`` seconds after the limit, and the task is an error that says so."""
    from pixelpilot.tasks.batch import run_batch

    task = tmp_path / "frozen.yaml"
    task.write_text(f"timeout: 2\nsteps:\n  - open: {DEMO}\n  - wait_for: {{text: never, timeout: 60}}\n")
    frozen: list[int] = []

    def freeze(outcomes) -> None:
        if frozen or outcomes[0].status != "running":
            return
        for child in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
            for pid in child.read_text().split():
                if b"frozen.yaml" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(int(pid), signal.SIGSTOP)
                    frozen.append(int(pid))

    t = time.monotonic()
    res = run_batch([task], output=tmp_path / "runs", on_update=freeze, grace=2.0, poll=0.1)
    took = time.monotonic() - t
    assert frozen, "the worker was never seen running"
    (o,) = res.outcomes
    assert (
        o.status == "error"
        and "ran past its time limit by 2 s and did not stop: its worker was killed" in o.error
    )
    assert took < 40 and not Path(f"/proc/{frozen[0]}").exists(), "the frozen worker is gone"
