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

from ..conftest import EXAMPLES, ROOT

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
    "error": ({"type", "message"}, set()),
    "skipped": ({"type", "message"}, set()),
    "system-out": (set(), set()),
    "system-err": (set(), set()),
}
CHILDREN = {
    "testsuites": {"testsuite"},
    "testsuite": {"testsuite", "properties", "testcase", "system-out", "system-err"},
    "testcase": {"skipped", "error", "failure", "system-out", "system-err"},
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
    assert len(list((tmp_path / "runs").iterdir())) == 3  # one run directory per task


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


def test_a_crashed_worker_fails_its_task_not_the_run(chromium, tmp_path):
    write_tasks(
        tmp_path / "tasks",
        2,
        {"slow.yaml": f"steps:\n  - open: {DEMO}\n  - wait_for: {{text: never, timeout: 60}}\n"},
    )

    def kill_the_slow_worker() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        cmd = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"slow.yaml" in cmd and b"--result-json" in cmd:
                        time.sleep(2)
                        os.kill(int(entry.name), signal.SIGKILL)
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
