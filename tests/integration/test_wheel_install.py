"""A good citizen: the wheel, installed into a new venv beside an ordinary project that has its own
``tasks`` package (with a conftest), a ``tools.py``, an ``agent/`` folder, and the PyPI package
``tools`` installed too. There ``pytest``, ``pytest -n 2``, ``pixelpilot run tasks/ --workers 2 --junit``
and the README's Python example work, and uninstalling either package leaves the other working.

It also proves that ``pip install 'pixelpilot[browser]'`` alone runs a task with a model step (its
frames decode with the core install): the model is an OpenAI-compatible server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.fake_openai import ReplayServer

from ..conftest import EXAMPLES, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLICK_SIGN_IN = (
    "Action: click Sign in.\n<tool_call>\n"
    '{"name": "computer_use", "arguments": {"action": "left_click", "coordinate": [263, 418]}}\n</tool_call>'
)


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> dict[str, object]:
    root = tmp_path_factory.mktemp("citizen")
    dist = root / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)],
        root,
        dict(os.environ),
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("pixelpilot-*.whl")
    venv = root / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], root, dict(os.environ)).returncode == 0
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    got = run(
        [str(py), "-m", "pip", "install", "-q", f"{wheel}[browser]", "pytest", "pytest-xdist", "tools"],
        root,
        env,
        timeout=900,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    return {"root": root, "py": py, "env": env, "bin": venv / "bin"}


def _project(root: Path) -> Path:
    proj = root / "project"
    (proj / "tasks").mkdir(parents=True)
    (proj / "agent").mkdir()
    (proj / "tasks" / "__init__.py").write_text("CELERY_STYLE = True\n")
    (proj / "tasks" / "conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef answer():\n    return 42\n"
    )
    (proj / "tasks" / "test_tasks.py").write_text(
        "from tasks import CELERY_STYLE\nfrom tools import demo_url\nimport tools\n\n"
        "def test_the_projects_own_packages(answer):\n"
        "    assert CELERY_STYLE and answer == 42 and demo_url() == 'http://example.test'\n"
    )
    (proj / "tools.py").write_text("def demo_url():\n    return 'http://example.test'\n")
    (proj / "agent" / "notes.txt").write_text("a folder named agent, as many projects have\n")
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    for name in ("login", "title"):
        (proj / "tasks" / f"{name}.yaml").write_text(
            f"name: {name}\nsteps:\n  - open: {demo}\n  - see: Sign in to Acme\n"
        )
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert "file:///path/to/examples/demo_app/index.html" in example
    (proj / "example.py").write_text(
        example.replace("file:///path/to/examples/demo_app/index.html", demo) + "print('EXAMPLE OK')\n"
    )
    return proj


def test_the_wheel_installs_one_namespace_beside_a_project_with_its_own_tasks_and_tools(installed):
    py, env, root = installed["py"], installed["env"], installed["root"]
    assert isinstance(py, Path) and isinstance(env, dict) and isinstance(root, Path)
    site = Path(
        run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env
        ).stdout.strip()
    )
    ours = (next(site.glob("pixelpilot-*.dist-info")) / "top_level.txt").read_text().split()
    assert ours == ["pixelpilot"]
    assert (site / "tools" / "tools.py").is_file()  # the PyPI package's files, untouched by ours
    proj = _project(root)

    tests = run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tasks/test_tasks.py"], proj, env)
    assert tests.returncode == 0 and "1 passed" in tests.stdout, tests.stdout + tests.stderr
    parallel = run(
        [str(py), "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider", "tasks/test_tasks.py"], proj, env
    )
    assert parallel.returncode == 0 and "1 passed" in parallel.stdout, parallel.stdout + parallel.stderr

    batch = run(
        [
            str(installed["bin"] / "pixelpilot"),
            "run",
            "tasks/",
            "--workers",
            "2",
            "--junit",
            "j.xml",
            "--output",
            "runs",
        ],
        proj,
        env,
    )
    assert batch.returncode == 0 and "2 passed, 0 failed" in batch.stdout, batch.stdout + batch.stderr
    cases = ET.parse(proj / "j.xml").getroot().findall(".//testcase")
    assert len(cases) == 2 and all(c.find("failure") is None and c.find("error") is None for c in cases)

    example = run([str(py), "example.py"], proj, env)
    assert "EXAMPLE OK" in example.stdout, example.stdout + example.stderr


def test_browser_extra_alone_runs_a_model_step(installed):
    py, env, root = installed["py"], installed["env"], installed["root"]
    assert isinstance(py, Path) and isinstance(env, dict) and isinstance(root, Path)
    server = ReplayServer([CLICK_SIGN_IN])
    demo = (EXAMPLES / "demo_app" / "index.html").as_uri()
    task = root / "model.yaml"
    task.write_text(
        f"model: {{openai: '{server.url}', name: m}}\nsteps:\n  - open: {demo}\n"
        "  - type: {text: alice, into: Username}\n  - type: {text: wonderland, into: Password}\n"
        "  - act: Click the Sign in button\n  - wait_for: Welcome, alice\n"
    )
    try:
        res = run(
            [str(installed["bin"] / "pixelpilot"), "run", str(task), "--output", str(root / "mruns")],
            root,
            env,
        )
    finally:
        server.close()
    assert res.returncode == 0 and "PASSED" in res.stdout, res.stdout + res.stderr
    assert server.calls == 1


def test_uninstalling_either_package_leaves_the_other_working(installed):
    py, env, root = installed["py"], installed["env"], installed["root"]
    assert isinstance(py, Path) and isinstance(env, dict) and isinstance(root, Path)
    check_tools = [str(py), "-c", "import tools; print(tools.__version__)"]
    check_ours = [str(py), "-c", "import pixelpilot.tasks.cli, pixelpilot; print(pixelpilot.Agent.__name__)"]
    assert run([str(py), "-m", "pip", "uninstall", "-y", "-q", "tools"], root, env).returncode == 0
    assert run(check_ours, root, env).stdout.strip() == "Agent"
    assert run([str(py), "-m", "pip", "install", "-q", "tools"], root, env, timeout=300).returncode == 0
    assert run([str(py), "-m", "pip", "uninstall", "-y", "-q", "pixelpilot"], root, env).returncode == 0
    assert (
        run(check_tools, root, env).stdout.strip() == "1.0.38" or run(check_tools, root, env).returncode == 0
    )
    gone = run([str(py), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"], root, env)
    assert "pixelpilot" not in gone.stdout + gone.stderr  # no dangling plugin entry point
