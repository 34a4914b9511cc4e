"""Ray as a batch's executor, on a local Ray cluster started by the suite (`ray start --head`, 2 CPUs, a
custom ``browser`` resource): each task runs on the cluster, each run directory lands in ``--output``,
JUnit reads as from the local executor, and a task whose process is killed on its node is an error."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.agent import read_run
from tests.support.procs import pids_running
from tests.support.web import free_port

from ..conftest import EXAMPLES, ROOT, run_dirs
from .test_batch_cli import assert_common_junit

pytestmark = [pytest.mark.browser, pytest.mark.slow]
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}  # a cluster on loopback, for this test


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        if os.environ.get("CI"):
            pytest.fail("Ray is missing on CI: scripts/install.sh installs pixelpilot[ray]")
        pytest.skip("Ray is not installed (pip install 'pixelpilot[ray]')")
    port = free_port()
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, **RAY_ENV}
    start = [str(ray), "start", "--head", f"--port={port}", "--num-cpus=2", '--resources={"browser": 2}']
    start += ["--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"]
    done = subprocess.run(start, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120, env=env)


def run_on_ray(address: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "pixelpilot.tasks.cli",
        "run",
        str(folder),
        "--executor",
        "ray",
        "--address",
        address,
    ]
    return subprocess.run(
        [*cmd, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, **RAY_ENV, "COLUMNS": "160"},
    )


def tasks_folder(root: Path) -> Path:
    folder = root / "tasks"
    folder.mkdir()
    shutil.copytree(EXAMPLES / "demo_app", folder / "demo_app")  # travels with the job's working_dir
    for i in range(3):
        (folder / f"ok{i}.yaml").write_text(
            "steps:\n  - open: demo_app/index.html\n  - see: Sign in to Acme\n"
        )
    (folder / "bad.yaml").write_text("steps:\n  - open: demo_app/index.html\n  - click: Sign on\n")
    (folder / "slow.yaml").write_text(
        "steps:\n  - open: demo_app/index.html\n  - wait_for: {text: never, timeout: 90}\n"
    )
    return folder


def test_a_folder_of_tasks_runs_on_a_ray_cluster(ray_cluster, tmp_path):
    folder, out, junit = tasks_folder(tmp_path), tmp_path / "runs", tmp_path / "junit.xml"

    def kill_the_slow_task_on_its_node() -> None:
        deadline = time.time() + 150
        while time.time() < deadline:
            for pid in pids_running(b"slow.yaml", b"--result-json", b"pixelpilot-ray-"):
                time.sleep(3)
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.3)

    killer = threading.Thread(target=kill_the_slow_task_on_its_node)
    killer.start()
    res = run_on_ray(ray_cluster, folder, "--output", str(out), "--junit", str(junit))
    killer.join()
    assert res.returncode == 1, res.stdout + res.stderr
    assert "3 passed, 2 failed" in res.stdout
    runs = {read_run(r).meta["task"]: read_run(r) for r in run_dirs(out)}
    assert {k for k, v in runs.items() if v.meta["status"] == "passed"} == {"ok0", "ok1", "ok2"}
    assert runs["bad"].meta["status"] == "failed" and (out / runs["bad"].path.name / "report.html").is_file()
    suite = assert_common_junit(junit).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "1")
    slow = next(c for c in suite.iter("testcase") if c.get("name") == "slow")
    assert "exit code -9" in slow.find("error").get("message")
    assert "no element with the text 'Sign on'" in next(
        c for c in suite.iter("testcase") if c.get("name") == "bad"
    ).find("failure").get("message")


def test_ray_actors_keep_their_drivers_across_tasks(ray_cluster, tmp_path):
    folder = tasks_folder(tmp_path)
    (folder / "slow.yaml").unlink()
    (folder / "bad.yaml").unlink()
    out = tmp_path / "runs"
    res = run_on_ray(ray_cluster, folder, "--keep-drivers", "--workers", "2", "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 passed, 0 failed" in res.stdout
    workers = [read_run(r).meta["worker"] for r in run_dirs(out)]
    assert len(workers) == 3 and len({w["pid"] for w in workers}) <= 2
    assert max(w["driver_task"] for w in workers) >= 2  # an actor's driver served a second task


def _runs_under_way(since: float) -> list[Path]:
    """The runs this test's tasks have under way on the node (the cluster is this machine): each node
    names its run directory in a ``rundir`` file in its ``pixelpilot-ray-*`` folder; a run is under way
    once its first step (``open``) is recorded and the long ``wait_for`` has begun."""
    found = []
    for marker in Path(tempfile.gettempdir()).glob("pixelpilot-ray-*/*rundir"):
        try:
            if marker.stat().st_mtime < since - 1:
                continue
            steps = Path(marker.read_text().strip()) / "steps.jsonl"
            if steps.read_text().count("\n") >= 1:
                found.append(marker)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("kept", [False, True], ids=["tasks", "actors-keeping-drivers"])
def test_ctrl_c_cancels_the_ray_tasks_and_each_run_is_recorded_interrupted(ray_cluster, tmp_path, kept):
    folder = tmp_path / "tasks"
    folder.mkdir()
    shutil.copytree(EXAMPLES / "demo_app", folder / "demo_app")
    for name in ("slow1", "slow2", "slow3"):
        (folder / f"{name}.yaml").write_text(
            "steps:\n  - open: demo_app/index.html\n  - wait_for: {text: never, timeout: 120}\n"
        )
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "pixelpilot.tasks.cli", "run", str(folder), "--executor", "ray"]
    since = time.time()
    proc = subprocess.Popen(
        [*cmd, "--address", ray_cluster, "--output", str(out), *(["--keep-drivers"] if kept else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **RAY_ENV, "COLUMNS": "160"},
    )
    try:
        deadline = time.time() + 150
        under_way: list[Path] = []
        while time.time() < deadline and len(under_way) < 2:  # two tasks (2 CPUs) run on the cluster
            under_way = _runs_under_way(since)
            time.sleep(0.3)
        assert len(under_way) >= 2, "the tasks never started on the cluster"
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout
    assert "interrupted" in stdout
    runs = [read_run(r) for r in run_dirs(out)]
    # the runs under way come back from their node, recorded as interrupted there; the third never began
    assert len(runs) == 2 and all(r.meta["status"] == "interrupted" for r in runs), [r.meta for r in runs]
    assert all(r.steps[-1].outcome == "interrupted" for r in runs)
    deadline = time.time() + 30  # nothing of the batch keeps running on the node
    while time.time() < deadline and pids_running(b"pixelpilot-ray-"):
        time.sleep(0.5)
    assert not pids_running(b"--result-json", b"slow", b"pixelpilot-ray-")


def test_the_live_table_shows_a_ray_tasks_steps_while_it_runs(ray_cluster, tmp_path, monkeypatch):
    """Each node reports its run's steps as they are recorded: the batch sees them before the run is back."""
    from pixelpilot.tasks.ray_executor import run_batch_ray

    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)
    folder = tmp_path / "tasks"
    folder.mkdir()
    shutil.copytree(EXAMPLES / "demo_app", folder / "demo_app")
    task = folder / "waits.yaml"
    task.write_text(
        "steps:\n  - open: demo_app/index.html\n  - see: Sign in to Acme\n"
        "  - wait_for: {text: never, timeout: 6}\n"
    )
    seen: list[tuple[str, int, int]] = []

    def watch(outcomes) -> None:
        (o,) = outcomes
        if o.status == "running" and o.steps_done:
            seen.append((o.status, o.steps_done, o.steps_total))

    res = run_batch_ray([task], output=tmp_path / "runs", address=ray_cluster, on_update=watch, poll=0.2)
    (o,) = res.outcomes
    assert o.status == "failed" and o.run_dir is not None
    assert ("running", 2, 3) in seen, seen  # open and see recorded, the wait under way, before the end
